"""`llmrec train-ranker` on a user's own contract files: trains, publishes, and the file loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrec.ranker.features import FEATURES
from llmrec.ranker.store import load_current
from tests.unit.test_cli_eval import _write_dataset
from workers.cli import app


@pytest.mark.model
def test_train_ranker_publishes_a_current_ranker(tmp_path: Path) -> None:
    items, events = _write_dataset(tmp_path)
    out = tmp_path / "ranker"
    args = ["train-ranker", "--items", str(items), "--events", str(events), "--name", "mine"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    ranker = load_current(out)
    assert ranker is not None
    m = ranker.manifest
    assert m["data"] == "mine"
    assert len(m["data_sha256"]) == 64
    assert m["features"] == list(FEATURES)
    assert m["train_groups"] > m["val_groups"] > 0
    assert 0.0 <= m["val_ndcg_at_10"] <= 1.0
    assert f"ranker {ranker.version}" in result.output


def test_train_ranker_refuses_all_datasets() -> None:
    result = CliRunner().invoke(app, ["train-ranker", "--dataset", "all"])
    assert result.exit_code != 0
