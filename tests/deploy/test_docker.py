"""deploy/docker/Dockerfile, read (no Docker engine runs here to build it): the build runs the
project's own install and export commands, the image runs as a non-root user with a health check."""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest

from tests.deploy import DEPLOY
from workers.settings import REPO_ROOT, Settings

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"

Instruction = tuple[str, str]  # (INSTRUCTION, its arguments, continuation lines joined)


def _stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage (FROM starts one)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: list[list[Instruction]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, args = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), args.strip()))
    return stages


def _runtime() -> list[Instruction]:
    return _stages()[-1]


def test_multi_stage_and_the_runtime_has_no_build_tools() -> None:
    stages = _stages()
    assert len(stages) >= 2
    runtime_runs = " ".join(a for i, a in _runtime() if i == "RUN")
    assert "[cpu]" in runtime_runs
    assert "export" not in runtime_runs  # torch and optimum stay in the build stage


def test_build_runs_the_projects_bootstrap_and_int8_export() -> None:
    runs = [a for i, a in _stages()[0] if i == "RUN"]
    assert any("./scripts/bootstrap.sh" in r for r in runs)
    (export,) = [shlex.split(r) for r in runs if "export-model" in r]
    assert export[export.index("--variant") + 1] == "int8"
    extras = next(r for r in runs if "bootstrap.sh" in r).split("EXTRAS=")[1].split()[0]
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras.split(",")) <= set(declared)


def test_copied_sources_exist_and_pass_the_dockerignore() -> None:
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in _stages():
        for instruction, args in stage:
            if instruction != "COPY" or "--from=" in args:
                continue
            *sources, _ = args.split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is not in the build context"


def test_runtime_user_is_not_root_and_health_is_checked() -> None:
    runtime = _runtime()
    users = [a for i, a in runtime if i == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    (health,) = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert "/readyz" in health
    assert runtime[-1][0] in {"CMD", "ENTRYPOINT"}
    assert [i for i, _ in runtime].index("USER") < len(runtime) - 1


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction, args in _runtime():
        if instruction == "ENV":
            values.update(pair.split("=", 1) for pair in shlex.split(args))
    return values


def test_runtime_settings_are_real(env: dict[str, str]) -> None:
    settings = {k: v for k, v in env.items() if k.startswith("LLMREC_")}
    fields = {f"LLMREC_{f.upper()}" for f in Settings.model_fields}
    assert set(settings) <= fields, sorted(set(settings) - fields)
    exposed = [a for i, a in _runtime() if i == "EXPOSE"]
    assert exposed == [settings["LLMREC_WEB_PORT"]]
    assert settings["LLMREC_WEB_HOST"] == "0.0.0.0"  # reachable from outside the container
