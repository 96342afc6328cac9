"""The stand-in images' parts that need no Docker engine: roles for every image, the portd listener.

These run in `make test` too (no e2e marker): they fail as soon as a profile
gains an image the end-to-end tier could not serve, or portd stops answering.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnigen.inputs.profile import Secrets
from omnigen.loading import load_profile
from omnigen.pipeline import compile_profile
from tests.conftest import EXAMPLES, compile_example, fake_token
from tests.e2e.e2e_profile import E2E_PROFILE
from tests.e2e.standins import STANDIN_SOURCES, _compile_portd, _is_static_elf, role_commands, used_image_keys


def test_every_image_the_e2e_deployment_runs_has_a_stand_in_role(tmp_path: Path) -> None:
    """Fails as soon as the generated deployment gains an image the end-to-end tier could not serve."""
    profile = tmp_path / "omnivoip.toml"
    profile.write_text(E2E_PROFILE)
    compiled = compile_profile(load_profile(profile, {}), Secrets(), fake_token)
    used = used_image_keys(compiled.plan, compiled.files["docker-compose.yml"])
    assert len(used) == len({compiled.plan.images[key].image for key in used}) >= 10
    assert set(used) <= set(role_commands(compiled.plan))


def test_every_shim_a_role_or_health_check_calls_is_shipped() -> None:
    shipped = {path.name for path in (STANDIN_SOURCES / "bin").iterdir()} | {"portd"}
    programs = set()
    for lines in role_commands(compile_example(EXAMPLES[0]).plan).values():
        for line in lines:
            instruction, _, argv = line.partition(" ")
            if instruction in ("CMD", "ENTRYPOINT"):
                programs.add(json.loads(argv)[0])
    programs.discard("server")  # minio's CMD holds the arguments of its ENTRYPOINT
    assert programs <= shipped
    # The commands the compose health checks run (templates/docker-compose.yml.j2).
    assert {"pg_isready", "redis-cli", "mc", "asterisk", "python", "celery"} <= shipped


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def portd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler; .ci/install-docker.sh installs gcc for the e2e tier")
    binary = tmp_path_factory.mktemp("portd") / "portd"
    _compile_portd(binary)
    return binary


@pytest.fixture
def running_portd(portd: Path, tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    tcp, udp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    record = tmp_path / "received.log"
    process = subprocess.Popen([str(portd), "--banner", "hello", "--record", str(record), f"tcp:{tcp}", f"udp:{udp}"], stdout=subprocess.PIPE)
    assert process.stdout is not None
    for _ in range(2):
        assert process.stdout.readline().startswith(b"portd: listening on")
    try:
        yield tcp, udp, record
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0, "portd must exit cleanly on SIGTERM (it is PID 1 in the stand-ins)"


def test_portd_is_static(portd: Path) -> None:
    assert _is_static_elf(portd), "a FROM scratch image has no dynamic loader"


def test_portd_answers_tcp_with_its_banner(running_portd: tuple[int, int, Path]) -> None:
    tcp, _, _ = running_portd
    with socket.create_connection(("127.0.0.1", tcp), timeout=3) as client:
        assert client.makefile("rb").readline() == b"hello\n"


def test_portd_records_every_udp_datagram(running_portd: tuple[int, int, Path]) -> None:
    _, udp, record = running_portd
    payload = f"rtp-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(payload.encode() + b"\x80\x00", ("127.0.0.1", udp))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (record.exists() and payload in record.read_text()):
        time.sleep(0.05)
    assert f"udp {udp} from 127.0.0.1:" in record.read_text()
    assert f"bytes: {payload}..\n" in record.read_text(), "non-printable bytes are recorded as dots"
