"""Run `llmrec worker` as a child process (demo, benchmark, end-to-end tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """A worker child with its own env (`LLMREC_*` overrides); stopped with SIGTERM."""

    def __init__(self, env: dict[str, str], log_path: Path, web_port: int) -> None:
        self.env = {**os.environ, **env, "LLMREC_WEB_PORT": str(web_port)}
        self.log_path = log_path
        self.web_port = web_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0, wait_index: bool = True) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "llmrec"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            status, doc = self.get("/health")
            if status == 200 or (status == 503 and not wait_index and doc):
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not healthy within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the process group; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (a crash: no shutdown code runs)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """(status, JSON body) of a GET on the worker's web server; (0, None) when unreachable."""
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = resp.read()
                return resp.status, orjson.loads(body) if body[:1] in b"{[" else body
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return exc.code, orjson.loads(body) if body[:1] in b"{[" else body
        except (OSError, ValueError):
            return 0, None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""
