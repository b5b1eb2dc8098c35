"""The built wheel, installed into a fresh virtualenv outside the checkout, runs from its own
site-packages: paths default under LLMREC_HOME, the broker's pom ships as package data, and
nothing is written into site-packages (issue 13, item 3).

The new venv sees the dev venv's dependencies through a plain path line in a .pth file: such a
line adds the folder to sys.path but runs none of the .pth files in it, so the checkout's
editable-install finder stays out and `workers` comes from the wheel (asserted below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from llmrec.data.builtin import builtin_conversion
from tests.install.conftest import copy_source
from workers.kafka_local import free_port
from workers.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.model]

MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Installed:
    bin: Path
    site: Path
    home: Path
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """`llmrec *args` from the new venv, in a folder outside the checkout."""
        return subprocess.run(
            [str(self.bin / "llmrec"), *args], cwd=self.cwd, env={**self.env, **env},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def python(self, code: str) -> str:
        done = subprocess.run(
            [str(self.bin / "python"), "-c", code], cwd=self.cwd, env=self.env,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    def site_files(self) -> set[str]:
        """Every file under site-packages except bytecode caches."""
        return {
            str(p.relative_to(self.site))
            for p in self.site.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    source = copy_source(root / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist")]
    subprocess.run([*build, str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (root / "dist").glob("llmrec-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "llmrec-dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LLMREC_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    home = root / "home"
    env |= {"LLMREC_HOME": str(home), "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    cwd = root / "cwd"
    cwd.mkdir()
    return Installed(venv / "bin", site, home, cwd, env)


def test_runs_from_site_packages_with_paths_under_home(installed: Installed) -> None:
    code = (
        "import workers, llmrec; from workers.settings import IN_CHECKOUT, Settings; "
        "from workers.kafka_local import POM, LOG4J; s = Settings(); "
        "print(workers.__file__, llmrec.__file__, IN_CHECKOUT, POM, LOG4J, s.kafka_home, "
        "s.kafka_lib, s.data_dir, s.model_dir, s.state_dir, s.reports_dir, sep='\\n')"
    )
    workers_file, llmrec_file, in_checkout, pom, log4j, *paths = installed.python(code).split()
    for module in (workers_file, llmrec_file):
        assert Path(module).is_relative_to(installed.site), module
    assert in_checkout == "False"
    for shipped in (pom, log4j):  # package data, readable from the installed wheel
        assert Path(shipped).is_relative_to(installed.site), shipped
        assert Path(shipped).is_file(), shipped
    home = installed.home
    assert [Path(p) for p in paths] == [
        home / "var" / "kafka", home / "lib" / "kafka", home / "data", home / "models",
        home / "var" / "state", home / "reports",
    ]  # fmt: skip
    done = installed.run("--help")
    assert done.returncode == 0, done.stderr
    assert "export-model" in done.stdout


def test_kafka_up_worker_health_down(installed: Installed) -> None:
    """The packaged pom resolves the jars into <home>/lib/kafka (Maven, from ~/.m2 when the
    checkout resolved them before), the broker starts, a worker answers /health."""
    before = installed.site_files()
    ports = {
        "LLMREC_KAFKA_PORT": str(free_port()), "LLMREC_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LLMREC_KAFKA_HEAP": "384m",
    }  # fmt: skip
    up = installed.run("kafka", "up", timeout=600, **ports)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert list((installed.home / "lib" / "kafka").glob("kafka_2.13-*.jar"))
        assert (installed.home / "var" / "kafka" / "config" / "server.properties").is_file()
        _worker_answers_health(installed, ports)
    finally:
        down = installed.run("kafka", "down", **ports)
    assert down.returncode == 0, down.stderr
    assert "broker stopped" in down.stderr
    assert installed.site_files() == before


def _worker_answers_health(installed: Installed, ports: dict[str, str]) -> None:
    web = free_port()
    env = {
        **installed.env, **ports, "LLMREC_ENCODER_BACKEND": "hashing", "LLMREC_PARTITIONS": "1",
        "LLMREC_WEB_PORT": str(web),
    }  # fmt: skip
    log_path = installed.home / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(installed.bin / "llmrec"), "worker"], cwd=installed.cwd, env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        health = _wait_health(proc, web, timeout=120)
        assert health is not None, log_path.read_text(errors="replace")[-4000:]
        assert health["status"] == "ok"
        assert health["model"]["encoder"] == "hashing"
        assert (installed.home / "var" / "state").is_dir()  # state under the home, by default
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def _wait_health(proc: subprocess.Popen[bytes], port: int, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                if resp.status == 200:
                    return dict(orjson.loads(resp.read()))
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    return None


@pytest.fixture(scope="module")
def model_dir(installed: Installed) -> Path:
    """A copy of the checkout's current exported encoder (a full export takes minutes on two
    cores), under the new home's model folder: nothing written there reaches the checkout."""
    current = Settings().model_dir / MODEL / "current"
    if not current.is_dir():
        pytest.fail(f"no exported encoder at {current}: run `make model`")
    dest = installed.home / "models" / MODEL
    dest.mkdir(parents=True)
    shutil.copytree(current.resolve(), dest / current.resolve().name)
    return installed.home / "models"


def test_export_model_finds_weights_and_skips_valid_artifacts(
    installed: Installed, model_dir: Path
) -> None:
    done = installed.run("export-model")
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stderr.split())
    assert "built nothing, skipped ['fp32', 'opt', 'int8', 'fp16']" in out
    assert (model_dir / MODEL / "current").is_symlink()


def test_eval_writes_reports_under_home(installed: Installed, model_dir: Path) -> None:
    """A small slice of ml-100k in the event contract (your own files), quick settings."""
    conversion = builtin_conversion(Settings().data_dir, "ml-100k")
    users = set(sorted({e["user_id"] for e in conversion.events})[:50])
    events = [e for e in conversion.events if e["user_id"] in users]
    wanted = {e["item_id"] for e in events}
    items = [i for i in conversion.items if i["item_id"] in wanted]
    files = installed.cwd / "tiny"
    files.mkdir()
    for name, records in (("items", items), ("events", events)):
        (files / f"{name}.jsonl").write_bytes(b"\n".join(map(orjson.dumps, records)) + b"\n")
    before = installed.site_files()
    done = installed.run(
        "eval", "--items", str(files / "items.jsonl"), "--events", str(files / "events.jsonl"),
        "--name", "tiny", "--baselines", "none", "--no-ablations", "--no-stream", "--quick",
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = orjson.loads((installed.home / "reports" / "tiny" / "report.json").read_bytes())
    assert report
    assert installed.site_files() == before
