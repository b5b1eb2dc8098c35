"""Default paths: the checkout keeps its places; anywhere else they sit under LLMREC_HOME."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from llmrec.encoder.runtime import import_onnxruntime
from llmrec.exceptions import EncoderError, MissingRuntimeError
from workers import settings as settings_mod
from workers.settings import IN_CHECKOUT, REPO_ROOT, Settings, default_home


@pytest.fixture(autouse=True)
def _no_llmrec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("LLMREC_")]:
        monkeypatch.delenv(name)


def test_checkout_keeps_its_paths() -> None:
    assert IN_CHECKOUT
    s = Settings()
    assert s.home == REPO_ROOT
    assert s.kafka_home == REPO_ROOT / "var" / "kafka"
    assert s.kafka_lib == REPO_ROOT / "deploy" / "kafka" / "lib"
    assert s.data_dir == REPO_ROOT.parent / "shared" / "data"
    assert s.model_dir == REPO_ROOT / "models"
    assert s.state_dir == REPO_ROOT / "var" / "state"
    assert s.reports_dir == REPO_ROOT / "reports"


def test_llmrec_home_moves_every_default_and_each_path_still_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path))
    monkeypatch.setenv("LLMREC_MODEL_DIR", "/elsewhere/models")
    s = Settings()
    assert (s.kafka_home, s.kafka_lib, s.data_dir, s.state_dir) == (
        tmp_path / "var" / "kafka", tmp_path / "lib" / "kafka", tmp_path / "data",
        tmp_path / "var" / "state",
    )  # fmt: skip
    assert s.model_dir == Path("/elsewhere/models")
    assert s.bench_dir == tmp_path / "bench-results"


def test_home_expands_the_user_folder() -> None:
    assert Settings(home=Path("~/llmrec-x")).data_dir == Path.home() / "llmrec-x" / "data"


def test_installed_default_home_is_the_xdg_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(settings_mod, "IN_CHECKOUT", False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_home() == tmp_path / "llmrec"
    assert Settings().state_dir == tmp_path / "llmrec" / "var" / "state"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the spec ignores relative paths
    assert default_home() == Path.home() / ".local" / "share" / "llmrec"


def test_missing_onnxruntime_names_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(MissingRuntimeError, match=r"llmrec\[cpu\].*llmrec\[gpu\]") as caught:
        import_onnxruntime()
    assert isinstance(caught.value, EncoderError)
    assert "\n" not in str(caught.value)
