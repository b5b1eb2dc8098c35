"""The export pipeline: fp32 -> opt / int8 / fp16, each gated, manifested, then `current`.

The source is the packaged all-MiniLM-L6-v2 unless a caller passes other weights (the tuned
ones of `llmrec tune-encoder`); the gates compare with PyTorch on those same weights.

Idempotent: a variant whose folder already holds a gated, sha-matching artifact of the same
version is skipped, so a second run takes about a second.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.encoder.artifacts import TOKENIZER, VARIANTS, open_artifact
from llmrec.encoder.config import DEFAULT_MAX_LENGTH, EncoderConfig
from llmrec.exceptions import ModelArtifactError
from llmrec.types import Vectors
from llmrec.versions import set_current
from onnx_export import validate
from onnx_export.export import Source, export_fp32, find_source
from onnx_export.manifest import build_manifest, is_valid, write_manifest
from onnx_export.optimize import optimize_graph
from onnx_export.quantize import detect_cpu_isa, quantize_int8, recipe_for

__all__ = ["ExportOptions", "ExportResult", "Step", "run_export"]

log = logging.getLogger(__name__)

Step = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What to build and where. `retrieval_limit` caps the MovieLens texts of the int8 check;
    `make_current` points `current` at the built version once every variant passed."""

    out: Path
    data_dir: Path
    variants: tuple[str, ...] = VARIANTS
    force: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    retrieval_limit: int | None = 3000
    calibration_texts: int = 256
    make_current: bool = True


@dataclass(slots=True)
class ExportResult:
    """Which variants were built or skipped, and the version now current."""

    version: str
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_export(
    options: ExportOptions, step: Step = lambda _msg: None, source: Source | None = None
) -> ExportResult:
    """Build the requested variants of `source` (default: the packaged weights; fp32 always,
    as the reference) and switch `current` when `options.make_current`."""
    unknown = set(options.variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    if source is None:
        step("hashing source weights")
        source = find_source()
    version_dir = options.out / source.version
    result = ExportResult(source.version)
    wanted = ["fp32", *[v for v in VARIANTS if v in options.variants and v != "fp32"]]
    todo = [v for v in wanted if options.force or not is_valid(version_dir / v, source.version)]
    result.skipped = [v for v in wanted if v not in todo]
    if todo:
        _Build(source, options, result, step).run(todo)
    if options.make_current:
        set_current(options.out, source.version)
    return result


class _Build:
    """One export run: builds variants into the version folder and records their parity."""

    def __init__(
        self, source: Source, options: ExportOptions, result: ExportResult, step: Step
    ) -> None:
        self.source = source
        self.options = options
        self.result = result
        self.step = step
        self.version_dir = options.out / source.version
        self.fixed_ref: Vectors | None = None
        self.retrieval: list[str] = []
        self.retrieval_ref: Vectors | None = None

    def run(self, todo: Sequence[str]) -> None:
        fp32_dir = self.version_dir / "fp32"
        if "fp32" in todo:
            self._fp32(fp32_dir)
        fp32 = open_artifact(fp32_dir, verify_sha=False)
        self.fixed_ref = self._encode(fp32.model_path, validate.FIXED_SENTENCES, "fp32")
        if "int8" in todo:
            self.step("encoding MovieLens retrieval texts with fp32")
            self.retrieval = validate.retrieval_texts(
                self.options.data_dir, self.options.retrieval_limit
            )
            self.retrieval_ref = self._encode(fp32.model_path, self.retrieval, "fp32")
        for variant in (v for v in todo if v != "fp32"):
            self._variant(variant, fp32.model_path)

    def _fp32(self, folder: Path) -> None:
        self.step("exporting fp32 with optimum")
        _clean(folder)
        model = export_fp32(self.source, folder)
        self.step("gate: fp32 ONNX vs sentence-transformers (PyTorch)")
        ref = validate.torch_vectors(
            self.source.path, validate.FIXED_SENTENCES, self.options.max_length
        )
        cand = self._encode(model, validate.FIXED_SENTENCES, "fp32")
        parity = {"vs_torch_fixed": validate.check_min_cosine("fp32", ref, cand)}
        self._finish(folder, "fp32", model, parity, {})

    def _variant(self, variant: str, fp32_model: Path) -> None:
        folder = self.version_dir / variant
        _clean(folder)
        folder.mkdir(parents=True)
        shutil.copy2(fp32_model.parent / TOKENIZER, folder / TOKENIZER)
        extra: dict[str, Any] = {}
        if variant in {"opt", "fp16"}:
            self.step(f"optimising graph -> {variant}")
            model = folder / "model.onnx"
            extra["fused_operators"] = optimize_graph(fp32_model, model, fp16=variant == "fp16")
        else:
            recipe = recipe_for(detect_cpu_isa())
            self.step(f"quantising int8 for {recipe.isa} (calibrating, smoothing)")
            calibration = _calibration(fp32_model.parent / TOKENIZER, self.options)
            model = quantize_int8(fp32_model, folder, calibration, recipe)
            extra["quantization"] = recipe.as_dict()
        self.step(f"gate: {variant} vs fp32")
        self._finish(folder, variant, model, self._gate(variant, model), extra)

    def _gate(self, variant: str, model: Path) -> dict[str, Any]:
        assert self.fixed_ref is not None
        if variant == "fp16":
            try:
                cand = self._encode(model, validate.FIXED_SENTENCES, variant)
            except ModelArtifactError as exc:  # fp16 kernels are GPU ones; a CPU may lack some
                log.warning("fp16 not validated on this machine: %s", exc)
                return {"vs_fp32_fixed": None, "note": "not validated: needs a GPU provider"}
            figures = validate.check_min_cosine(variant, self.fixed_ref, cand, 0.999)
            return {"vs_fp32_fixed": figures}
        if variant == "opt":
            cand = self._encode(model, validate.FIXED_SENTENCES, variant)
            return {"vs_fp32_fixed": validate.check_min_cosine(variant, self.fixed_ref, cand)}
        assert self.retrieval_ref is not None
        movielens = validate.check_int8(
            self.retrieval_ref, self._encode(model, self.retrieval, variant)
        )
        fixed = self._encode(model, validate.FIXED_SENTENCES, variant)
        return {
            "vs_fp32_movielens": movielens,
            "vs_fp32_fixed_mean_cosine": float(validate.cosines(self.fixed_ref, fixed).mean()),
        }

    def _finish(
        self, folder: Path, variant: str, model: Path, parity: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        manifest = build_manifest(
            self.source,
            variant,
            model,
            max_length=self.options.max_length,
            parity=parity,
            extra=extra,
        )
        write_manifest(folder, manifest)
        self.result.built.append(variant)
        self.result.parity[variant] = parity

    def _encode(self, model: Path, texts: Sequence[str], variant: str) -> Vectors:
        config = EncoderConfig(max_length=self.options.max_length, cache_size=0)
        return validate.onnx_vectors(
            model, model.parent / TOKENIZER, texts, variant=variant, config=config
        )


def _calibration(tokenizer_path: Path, options: ExportOptions) -> list[list[int]]:
    """Token ids of calibration texts: MovieLens movies after the gate's retrieval texts."""
    from tokenizers import Tokenizer

    texts = validate.retrieval_texts(options.data_dir)
    start = options.retrieval_limit or 0
    pool = texts[start:] or texts
    stride = max(1, len(pool) // options.calibration_texts)
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=options.max_length)
    picked = [*pool[::stride][: options.calibration_texts], *validate.FIXED_SENTENCES]
    return [e.ids for e in tokenizer.encode_batch(picked)]


def _clean(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
