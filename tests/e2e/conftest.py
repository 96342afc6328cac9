"""Fixtures of the end-to-end tier: a private dockerd, stand-in images, one generated deployment brought up.

The tier runs only when selected with `-m e2e` (`make e2e`): it needs root and
Docker (installed by .ci/install-docker.sh, which this file never calls), and
takes a minute or two. Plain `pytest` / `make test` report it as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnigen.inputs.profile import load_secrets, secrets_path_for
from omnigen.loading import load_profile
from omnigen.pipeline import compile_profile
from omnigen.plan.plan import Plan
from tests.conftest import run_cli
from tests.e2e.e2e_profile import E2E_PROFILE
from tests.e2e.engine import DockerEngine, EngineUnavailable, start_engine
from tests.e2e.standins import build_standins, used_image_keys

UP_TIMEOUT_SECONDS = 300


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = "e2e" in (config.getoption("markexpr", default="") or "")
    if selected:
        return
    skip = pytest.mark.skip(reason="end-to-end tier: needs root and a Docker engine; run `make e2e` (pytest -m e2e)")
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    try:
        started = start_engine()
    except EngineUnavailable as reason:
        pytest.skip(f"\n{'!' * 70}\nEND-TO-END TESTS SKIPPED: the Docker engine cannot start here:\n{reason}\n{'!' * 70}")
    try:
        yield started
    finally:
        started.stop()


@dataclass(frozen=True)
class Deployment:
    """A generated deployment that is up on the private engine."""

    engine: DockerEngine
    folder: Path
    plan: Plan

    def compose(self, *args: str, timeout: float = 300) -> str:
        result = self.engine.compose(self.folder, *args, timeout=timeout)
        assert result.returncode == 0, f"compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def diagnostics(self) -> str:
        status = self.engine.compose(self.folder, "ps", "-a")
        logs = self.engine.compose(self.folder, "logs", "--no-color", "--tail", "15")
        return f"{status.stdout}{status.stderr}\n{logs.stdout[-6000:]}{logs.stderr[-2000:]}"


@pytest.fixture(scope="module")
def deployment(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("e2e")
    profile = folder / "omnivoip.toml"
    profile.write_text(E2E_PROFILE)
    out = folder / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, f"omnigen build failed:\n{built.stderr}"
    # The same compilation in-process, with the secrets the CLI generated, gives the Plan the files came from.
    compiled = compile_profile(load_profile(profile, {}), load_secrets(secrets_path_for(profile)))
    assert (out / "docker-compose.yml").read_text() == compiled.files["docker-compose.yml"]
    deployed = Deployment(engine, out, compiled.plan)
    build_standins(engine, deployed.plan, used_image_keys(deployed.plan, compiled.files["docker-compose.yml"]))
    up = engine.compose(deployed.folder, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_SECONDS), timeout=UP_TIMEOUT_SECONDS + 60)
    try:
        assert up.returncode == 0, f"compose up --wait failed:\n{up.stdout}\n{up.stderr}\n{deployed.diagnostics()}"
        yield deployed
    finally:
        # Also on failure: leave no containers, networks, volumes or ports behind.
        engine.compose(deployed.folder, "down", "--volumes", "--timeout", "5")
