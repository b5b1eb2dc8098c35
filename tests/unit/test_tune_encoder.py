"""`llmrec tune-encoder`: train pairs from the train split only, batching, and a real tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from llmrec.data.contract import ContractDataset, from_records, write_jsonl
from llmrec.encoder import Encoder, EncoderConfig, load_encoder
from llmrec.encoder.artifacts import find_artifact
from llmrec.eval.data import prepare
from llmrec.exceptions import ModelArtifactError
from onnx_export import cli_tune, validate
from onnx_export.export import find_source
from onnx_export.pairs import batches, build_pairs
from onnx_export.pipeline import ExportOptions, ExportResult
from onnx_export.tune import TuneOptions, tune_encoder
from workers.settings import Settings, get_settings

TITLES = {
    "A": "Alpha Cycling Monthly",
    "B": "Beta Gossip Weekly",
    "C": "Gamma Road Racing",
    "D": "Delta Trail Running",
    "E": "Epsilon Marathon News",
    "F": "Zeta Bike Repair",
}


def _event(n: int, kind: str, user: str, item: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": kind, "user_id": user, "item_id": item, "ts": n, **extra}


def _toy() -> ContractDataset:
    """u1 has 5 items (D = validation, E = test); u2 and u3 are train-only."""
    items = [{"item_id": i, "title": t, "categories": ["Sports"]} for i, t in TITLES.items()]
    events = [
        _event(1, "rating", "u1", "A", rating=5),
        _event(2, "rating", "u1", "B", rating=1),  # negative: never a pair
        _event(3, "rating", "u1", "C", rating=4),
        _event(4, "review", "u1", "D", rating=5, text="Delta got me running trails"),  # held out
        _event(5, "rating", "u1", "E", rating=5),  # held out (test)
        _event(6, "click", "u2", "F"),
        _event(7, "review", "u2", "F", rating=2, text="Zeta is  thin on repairs"),
        _event(8, "click", "u2", "A"),
        _event(9, "click", "u3", "A"),
        _event(10, "dislike", "u3", "B"),
    ]
    return from_records("toy", items, events)


def _text(item: str) -> str:
    return f"{TITLES[item]} Genres: Sports."


def test_pairs_come_from_positive_train_events_only() -> None:
    pairs = build_pairs(prepare(_toy()))
    # u1: A -> C (B rated 1 is skipped; D and E are the evaluation's, never paired).
    # u2: F -> A (its rating-2 review of F is not an engagement). u3: A, then a dislike.
    assert set(pairs.next_item) == {(_text("A"), _text("C")), (_text("F"), _text("A"))}
    # The review of held-out D is absent; the negative review of F is kept, normalised.
    assert pairs.review == (("Zeta is thin on repairs", _text("F")),)
    assert pairs.counts() == {"next_item": 2, "review": 1}


def test_pair_hash_names_the_set_not_its_order() -> None:
    pairs = build_pairs(prepare(_toy()))
    flipped = type(pairs)(pairs.next_item[::-1], pairs.review)
    assert flipped.sha256() == pairs.sha256()
    fewer = type(pairs)(pairs.next_item[:1], pairs.review)
    assert fewer.sha256() != pairs.sha256()


def test_batches_never_repeat_a_text_and_are_seeded() -> None:
    pairs = [(f"item {i % 5}", f"item {(i * 7 + 1) % 11}") for i in range(60)]
    pairs = list(dict.fromkeys(p for p in pairs if p[0] != p[1]))
    plan = batches(pairs, 4, seed=1)
    for batch in plan:
        texts = [t for pair in batch for t in pair]
        assert len(texts) == len(set(texts))
        assert 2 <= len(batch) <= 4
    placed = [p for batch in plan for p in batch]
    assert len(placed) == len(set(placed))
    assert set(placed) <= set(pairs)
    assert plan == batches(pairs, 4, seed=1)
    assert plan != batches(pairs, 4, seed=2)


def test_unknown_encoder_version_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "r2-op18-aaa").mkdir()
    for bad in ("r2-op18-bbb", "..", "current"):
        with pytest.raises(ModelArtifactError, match="have: r2-op18-aaa"):
            find_artifact(tmp_path, "fp32", version=bad)


def test_encoder_version_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().encoder_version is None
    monkeypatch.setenv("LLMREC_ENCODER_VERSION", "r2-op18-ft-0123456789ab")
    assert Settings().encoder_version == "r2-op18-ft-0123456789ab"


def test_cli_reads_contract_files_and_keeps_current(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake(ds: ContractDataset, export: ExportOptions, options: TuneOptions, step: Any) -> Any:
        seen.update(ds=ds, export=export, options=options)
        record = {"data": {"pairs": {}, "pairs_sha256": "0" * 64}, "steps": 3, "train_seconds": 1.0,
                  "device": "cpu", "loss_first": 2.0, "loss_last": 1.0}  # fmt: skip
        return ExportResult("r2-op18-ft-0123456789ab", built=["fp32"]), record

    monkeypatch.setattr(cli_tune, "tune_encoder", fake)
    toy = _toy()
    items, events = tmp_path / "items.jsonl", tmp_path / "events.jsonl"
    write_jsonl(items, [r.model_dump() for r in toy.items.values()])
    write_jsonl(events, [e.model_dump(mode="json") for e in toy.events])
    app = typer.Typer()
    app.command()(cli_tune.tune_encoder_command)
    args = ["--items", str(items), "--events", str(events), "--max-steps", "3"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("r2-op18-ft-0123456789ab")
    assert len(seen["ds"].events) == len(toy.events)
    assert seen["export"].make_current is False
    assert seen["options"].max_steps == 3
    refused = CliRunner().invoke(app, ["--out", str(tmp_path)])
    assert refused.exit_code == 2
    assert "--dataset" in refused.output


def _catalogue_dataset() -> ContractDataset:
    """Enough distinct pairs for a few batches of 4: users reading through one theme."""
    themes = ["cycling", "cooking", "chess", "gardening"]
    items = [
        {"item_id": f"{t}{k}", "title": f"{t.title()} magazine issue {k}", "categories": [t]}
        for t in themes
        for k in range(6)
    ]
    events, n = [], 0
    for u in range(8):
        theme = themes[u % 4]
        for k in range(6):
            n += 1
            item = f"{theme}{(u + k) % 6}"
            if k % 2:
                text = f"Issue {(u + k) % 6} has the best {theme} pieces"
                events.append(_event(n, "review", f"u{u}", item, rating=4, text=text))
            else:
                events.append(_event(n, "click", f"u{u}", item))
    return from_records("catalogue", items, events)


@pytest.mark.model
@pytest.mark.slow
def test_tune_exports_a_gated_version_the_runtime_opens(
    tmp_path: Path, fp32_encoder: Encoder
) -> None:
    ds = _catalogue_dataset()
    export = ExportOptions(
        out=tmp_path, data_dir=get_settings().data_dir, variants=("fp32", "int8"),
        retrieval_limit=300, calibration_texts=64, make_current=False,
    )  # fmt: skip
    options = TuneOptions(max_steps=4, batch_size=4, learning_rate=1e-4)
    result, record = tune_encoder(ds, export, options)

    assert result.version.startswith("r2-op18-ft-")
    assert result.built == ["fp32", "int8"]
    assert not (tmp_path / "current").exists()  # the base stays current unless asked
    base = find_source()
    for variant in ("fp32", "int8"):
        manifest = find_artifact(tmp_path, variant, version=result.version).manifest
        assert manifest["gate"]["passed"] is True
        assert manifest["tuning"]["base"]["weights_sha256"] == base.weights_sha256
        assert manifest["tuning"]["data"]["pairs_sha256"] == build_pairs(prepare(ds)).sha256()
        assert manifest["tuning"]["steps"] == 4
        assert manifest["source"]["weights_sha256"] != base.weights_sha256
    fp32_gate = result.parity["fp32"]["vs_torch_fixed"]
    assert fp32_gate["min_cosine"] >= validate.FP32_MIN_COSINE
    assert record["data"]["pairs"]["review"] >= 8
    assert record["data"]["pairs"]["next_item"] >= 8

    config = EncoderConfig(cache_size=0, intra_op_threads=2)
    tuned = load_encoder(tmp_path, "fp32", config, version=result.version)
    assert tuned.info["version"] == result.version
    texts = list(validate.FIXED_SENTENCES[:6])
    cos = (tuned.encode(texts) * fp32_encoder.encode(texts)).sum(axis=1)
    assert np.all(cos > 0.9)  # still the same model, nudged
    assert float(cos.mean()) < 0.9995  # but nudged: base vs base is exactly 1
    with pytest.raises(ModelArtifactError, match="missing"):
        load_encoder(tmp_path, "fp32")  # no `current` link was made
