"""With no broker listening, every Kafka command says so in one line and exits 2 (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workers.kafka_local import free_port

LLMREC = Path(sys.executable).with_name("llmrec")
EVENT = '{"event_id": "e1", "type": "view", "user_id": "u", "item_id": "i", "ts": 1700000000}'
COMMANDS = {
    "produce": ["produce", "--event", EVENT],
    "tail": ["tail"],
    "dlq tail": ["dlq", "tail"],
    "dlq replay": ["dlq", "replay", "--all"],
    "worker": ["worker"],
}


def _run_all(env: dict[str, str], names: list[str]) -> dict[str, tuple[int, str, str]]:
    """The commands at once (they only wait for the timeout): exit status, stdout, stderr."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMREC_")}
    running = {
        name: subprocess.Popen(
            [str(LLMREC), *args, "--connect-timeout", "1"],
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in COMMANDS.items()
        if name in names
    }
    done = {}
    for name, proc in running.items():
        out, err = proc.communicate(timeout=60)
        done[name] = (proc.returncode, out, err)
    return done


def test_no_local_broker_is_one_line_naming_it_and_how_to_start_it(tmp_path: Path) -> None:
    port = free_port()
    env = {"LLMREC_KAFKA_PORT": str(port), "LLMREC_STATE_DIR": str(tmp_path)}

    for name, (code, out, err) in _run_all(env, list(COMMANDS)).items():
        lines = [ln for ln in (out + err).splitlines() if ln.strip()]
        assert code == 2, (name, lines)
        assert len(lines) == 1, (name, lines)
        assert f"127.0.0.1:{port}" in lines[0], name
        assert "llmrec kafka up" in lines[0], name
        assert "Traceback" not in out + err, name


def test_an_unreachable_cluster_names_its_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {"LLMREC_BOOTSTRAP_SERVERS": address, "LLMREC_STATE_DIR": str(tmp_path)}

    for name, (code, out, err) in _run_all(env, ["dlq tail"]).items():
        lines = [ln for ln in (out + err).splitlines() if ln.strip()]
        assert (code, len(lines)) == (2, 1), (name, lines)
        assert f"no Kafka broker answers at {address}" in lines[0], name
        assert "LLMREC_BOOTSTRAP_SERVERS" in lines[0], name
