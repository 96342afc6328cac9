"""A 1-CPU machine: a dockerd pinned with `taskset -c 0` creates every container of a `host.cpus = 1` profile.

Before host.cpus, asterisk, postgresql and django-app got `cpus: "2.0"` whatever the host, and such
an engine refuses them: "Range of CPUs is from 0.01 to 1.00, as there are only 1 CPUs available"
(DOMAIN.md section 10). The test proves both halves on the same engine.

The file name sorts before test_deploy.py on purpose: engines are serialized by a lock
(tests/e2e/engine.py), and this one must be started and stopped before the session's engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnigen.inputs.profile import load_secrets, secrets_path_for
from omnigen.loading import load_profile
from omnigen.pipeline import compile_profile
from tests.conftest import run_cli
from tests.e2e.e2e_profile import E2E_PROFILE
from tests.e2e.engine import DockerEngine, EngineUnavailable, start_engine
from tests.e2e.standins import BASE_IMAGE, build_standins, used_image_keys

pytestmark = pytest.mark.e2e

ONE_CPU_PROFILE = E2E_PROFILE.replace('kind = "bare-metal"\n', 'kind = "bare-metal"\ncpus = 1\nmemory = "4G"\n')


@pytest.fixture(scope="module")
def pinned_engine() -> Iterator[DockerEngine]:
    try:
        started = start_engine(prefix=("taskset", "-c", "0"))
    except EngineUnavailable as reason:
        pytest.skip(f"\n{'!' * 70}\nEND-TO-END TESTS SKIPPED: the pinned Docker engine cannot start here:\n{reason}\n{'!' * 70}")
    try:
        yield started
    finally:
        started.stop()


def test_the_pinned_engine_counts_one_cpu_and_refuses_two(pinned_engine: DockerEngine) -> None:
    """What main's output asked for: the engine must really be a 1-CPU one, or the next test proves nothing."""
    assert pinned_engine.docker("info", "--format", "{{.NCPU}}").stdout.strip() == "1"
    from tests.e2e.standins import build_base

    build_base(pinned_engine)
    refused = pinned_engine.docker("create", "--cpus", "2.0", BASE_IMAGE, check=False)
    assert refused.returncode != 0
    assert "Range of CPUs is from 0.01 to 1.00, as there are only 1 CPUs available" in refused.stderr


def test_every_container_of_a_one_cpu_profile_is_created(pinned_engine: DockerEngine, tmp_path: Path) -> None:
    profile = tmp_path / "omnivoip.toml"
    profile.write_text(ONE_CPU_PROFILE)
    out = tmp_path / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, built.stderr
    compiled = compile_profile(load_profile(profile, {}), load_secrets(secrets_path_for(profile)))
    assert max(float(limits.cpus) for limits in compiled.plan.limits.values()) == 1.0
    build_standins(pinned_engine, compiled.plan, used_image_keys(compiled.plan, compiled.files["docker-compose.yml"]))
    try:
        created = pinned_engine.compose(out, "create")
        assert created.returncode == 0, f"compose create failed on a 1-CPU engine:\n{created.stdout}\n{created.stderr}"
        names = pinned_engine.compose(out, "ps", "--all", "--quiet").stdout.split()
        expected = len(compiled.plan.limits) - 2 + compiled.plan.workers["celery"] + compiled.plan.workers["dialer"]
        assert len(names) == expected
        for container in pinned_engine.inspect(*names):
            assert 0 < container["HostConfig"]["NanoCpus"] <= 1_000_000_000, container["Name"]
            assert 0 < container["HostConfig"]["MemoryReservation"] <= container["HostConfig"]["Memory"], container["Name"]
    finally:
        pinned_engine.compose(out, "down", "--volumes", "--timeout", "5")


def test_the_same_profile_sized_for_the_default_host_is_refused_by_that_engine(pinned_engine: DockerEngine, tmp_path: Path) -> None:
    """Without host.cpus a bare-metal profile is sized for 8 CPUs: limits of 2.0, which this engine refuses (as main's did)."""
    profile = tmp_path / "omnivoip.toml"
    profile.write_text(E2E_PROFILE)
    out = tmp_path / "out"
    assert run_cli("build", str(profile), "-o", str(out)).returncode == 0
    compiled = compile_profile(load_profile(profile, {}), load_secrets(secrets_path_for(profile)))
    assert max(float(limits.cpus) for limits in compiled.plan.limits.values()) == 2.0
    build_standins(pinned_engine, compiled.plan, used_image_keys(compiled.plan, compiled.files["docker-compose.yml"]))
    try:
        created = pinned_engine.compose(out, "create")
        assert created.returncode != 0
        assert "Range of CPUs is from 0.01 to 1.00" in created.stderr
    finally:
        pinned_engine.compose(out, "down", "--volumes", "--timeout", "5")
