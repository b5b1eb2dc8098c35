"""`llmrec eval --items --events` on a user's own contract files, as a new user would run it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrec.data.contract import write_jsonl
from workers.cli import app


def _write_dataset(folder: Path) -> tuple[Path, Path]:
    rng = random.Random(3)
    items = [{"item_id": f"i{n}", "title": f"gadget number {n}", "ts": 0} for n in range(30)]
    events = []
    for u in range(40):
        for step in range(6):
            item = f"i{(u + step * rng.randrange(1, 4)) % 30}"
            events.append({"event_id": f"{u}-{step}", "type": "purchase", "user_id": f"u{u}",
                           "item_id": item, "ts": 1_700_000_000 + 3600 * step + u})  # fmt: skip
    items_path, events_path = folder / "items.jsonl.gz", folder / "events.jsonl"
    write_jsonl(items_path, items)
    write_jsonl(events_path, events)
    with events_path.open("a", encoding="utf-8") as f:
        f.write('{"event_id": "x", "type": "teleport"}\n')  # line 241: invalid
    return items_path, events_path


@pytest.mark.model
def test_eval_reads_contract_files_and_writes_a_report(tmp_path: Path) -> None:
    items, events = _write_dataset(tmp_path)
    out = tmp_path / "reports"
    args = ["eval", "--items", str(items), "--events", str(events), "--name", "mine"]
    args += ["--baselines", "pop,ease", "--no-ablations", "--no-stream", "--quick"]
    args += ["--candidate-scale", "0.5"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    # the invalid line, by number (the console wraps long paths: compare without line breaks)
    assert "events.jsonl:241" in result.output.replace("\n", "")
    doc = json.loads((out / "mine" / "report.json").read_text())
    assert doc["counts"]["invalid_records"] == 1
    assert set(doc["protocol_a"]["models"]) == {"Pop", "EASE", "Hybrid", "Hybrid, linear fusion"}
    assert doc["protocol_a"]["best_baseline"] in {"Pop", "EASE"}
    retrieval = doc["protocol_a"]["linear_fusion_config"]["retrieval"]
    assert (retrieval["per_topic_k"], retrieval["covisit_k"]) == (50, 100)  # half the budgets


def test_eval_refuses_a_file_without_valid_records(tmp_path: Path) -> None:
    items, _ = _write_dataset(tmp_path)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "--items", str(items), "--events", str(junk)])
    assert result.exit_code == 2
    assert "no valid record" in result.output.replace("\n", "")  # unwrap the console
