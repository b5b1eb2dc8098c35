"""The export's quality gate, manifest and layout helpers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from llmrec.encoder.artifacts import find_artifact, open_artifact
from llmrec.exceptions import ModelArtifactError
from llmrec.versions import set_current
from onnx_export import ExportOptions, cli, run_export, validate
from onnx_export.deps import MissingExportDependencyError, require
from onnx_export.manifest import is_valid
from onnx_export.quantize import detect_cpu_isa, recipe_for


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_top_k_overlap_counts_shared_neighbours() -> None:
    ref = _unit(np.random.default_rng(0).normal(size=(200, 16)))
    assert validate.top_k_overlap(ref, ref, 10, block=64) == 1.0
    shuffled = _unit(np.random.default_rng(1).normal(size=(200, 16)))
    assert validate.top_k_overlap(ref, shuffled, 10) < 0.2


def test_int8_gate_fails_on_noisy_vectors() -> None:
    ref = _unit(np.random.default_rng(0).normal(size=(300, 32)))
    noisy = _unit(ref + np.random.default_rng(1).normal(scale=0.3, size=ref.shape))
    with pytest.raises(ModelArtifactError, match="quality gate failed for int8"):
        validate.check_int8(ref, noisy)
    assert validate.check_int8(ref, ref)["top10_overlap"] == 1.0


def test_min_cosine_gate() -> None:
    ref = _unit(np.eye(4, 8) + 0.1)
    validate.check_min_cosine("fp32", ref, ref)
    with pytest.raises(ModelArtifactError, match="min cosine"):
        validate.check_min_cosine("fp32", ref, _unit(ref + np.eye(4, 8) * 0.2))


def test_cpu_isa_detection_and_artifact_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu sse avx2 avx512f avx512_vnni\n", encoding="utf-8")
    assert detect_cpu_isa(cpuinfo) in {"avx512_vnni", "arm64"}
    cpuinfo.write_text("flags\t: fpu sse avx2\n", encoding="utf-8")
    assert detect_cpu_isa(cpuinfo) in {"avx2", "arm64"}
    assert recipe_for("avx512_vnni").file_name == "model_qint8_avx512_vnni.onnx"
    assert recipe_for("avx2").reduce_range
    assert not recipe_for("avx512_vnni").reduce_range


def test_current_pointer_switches_atomically(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    set_current(tmp_path, "v1")
    assert (tmp_path / "current").resolve().name == "v1"
    set_current(tmp_path, "v2")
    assert (tmp_path / "current").resolve().name == "v2"


@pytest.mark.model
def test_manifest_records_gate_figures(model_root: Path) -> None:
    for variant in ("fp32", "opt", "int8", "fp16"):
        artifact = find_artifact(model_root, variant, verify_sha=True)
        manifest = artifact.manifest
        assert manifest["gate"]["passed"] is True
        assert len(manifest["source"]["weights_sha256"]) == 64
        assert manifest["opset"] == 18
        assert manifest["parity"]
    int8 = find_artifact(model_root, "int8").manifest
    assert int8["parity"]["vs_fp32_movielens"]["top10_overlap"] >= validate.INT8_TOP10_OVERLAP
    assert int8["file"].startswith("model_qint8_")


@pytest.mark.model
def test_changed_file_invalidates_artifact(model_root: Path, tmp_path: Path) -> None:
    src = find_artifact(model_root, "opt")
    copy = tmp_path / "opt"
    shutil.copytree(src.folder, copy)
    assert is_valid(copy, src.version)
    with (copy / src.manifest["file"]).open("r+b") as f:
        f.seek(-16, 2)
        f.write(b"\0" * 16)
    assert not is_valid(copy, src.version)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["variant"] == "opt"


@pytest.mark.model
@pytest.mark.slow
def test_gate_rejects_corrupted_model(model_root: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    numpy_helper = pytest.importorskip("onnx.numpy_helper")
    fp32 = open_artifact(model_root / "current" / "fp32")
    model = onnx.load(str(fp32.model_path))
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:  # perturb every attention/FFN weight by ~5%
        if "MatMul" in tensor.name:
            w = numpy_helper.to_array(tensor)
            noisy = w + rng.normal(scale=0.05 * float(np.abs(w).mean()), size=w.shape)
            tensor.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), tensor.name))
    corrupted = tmp_path / "model.onnx"
    onnx.save(model, str(corrupted))
    shutil.copy2(fp32.tokenizer_path, tmp_path / "tokenizer.json")
    texts = list(validate.FIXED_SENTENCES)
    ref = validate.onnx_vectors(fp32.model_path, fp32.tokenizer_path, texts, variant="fp32")
    bad = validate.onnx_vectors(corrupted, tmp_path / "tokenizer.json", texts, variant="fp32")
    with pytest.raises(ModelArtifactError, match="quality gate failed"):
        validate.check_min_cosine("fp32", ref, bad)


@pytest.mark.model
def test_export_is_idempotent_when_artifacts_are_valid(model_root: Path) -> None:
    result = run_export(ExportOptions(out=model_root, data_dir=Path("/nonexistent")))
    assert result.built == []
    assert result.skipped == ["fp32", "opt", "int8", "fp16"]
    assert (model_root / "current").resolve().name == result.version


def test_cli_exits_non_zero_with_the_gate_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing(*_args: object, **_kwargs: object) -> None:
        raise ModelArtifactError("quality gate failed for int8 vs fp32: top-10 overlap 0.8")

    monkeypatch.setattr(cli, "run_export", failing)
    app = typer.Typer()
    app.command()(cli.export_model)
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--variant", "int8"])
    assert result.exit_code == 1
    assert "quality gate failed" in result.output


def test_missing_export_dependency_names_the_extra() -> None:
    with pytest.raises(MissingExportDependencyError, match=r"pip install '\.\[export\]'"):
        require("no_such_module_for_llmrec_tests")
