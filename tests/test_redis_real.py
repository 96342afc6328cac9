"""Redis gets its password from the environment, never from a command line: judged by the real
Compose (what the container is told to run) and Debian's redis-server and redis-cli 7 (that the
command it runs really requires exactly the sidecar's password, and the healthcheck passes).

redis-server and redis-tools come from .ci/install-daemons.sh; a missing one fails, never skips.
Each server listens on 127.0.0.1 only and is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
import yaml

from omnigen.pipeline import build
from tests.conftest import ROOT, compose_json, fake_token, make_fake_checkout

HOSTILE = [
    'p@ss "w\\ord\' $x ${REDIS_PASSWORD} `id` $(id)\n\ttab é😀 \\x41 end',
    "-a --requirepass ping",
    "é" * 1024,
]
INSTALL_HINT = "install it with .ci/install-daemons.sh"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing; {INSTALL_HINT}")
    return path


def _built(folder: Path, password: str, profile_name: str = "vps-nat") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make_fake_checkout(folder.parent / "omnivoip")  # build.source = "../omnivoip", beside the site
    profile = folder / "site.toml"
    profile.write_text((ROOT / "profiles" / f"{profile_name}.toml").read_text())
    (folder / "site.secrets.toml").write_text(tomlkit.dumps({"redis_password": password}))
    out = folder / "out"
    build(profile, out, environ={}, token=fake_token)
    return out


def _command_lines(service: dict[str, Any]) -> str:
    return json.dumps([service.get("command"), service.get("entrypoint"), (service.get("healthcheck") or {}).get("test")], ensure_ascii=False)


@pytest.mark.parametrize("password", HOSTILE, ids=["injection", "options", "long"])
def test_no_command_line_holds_the_password_in_composes_view(tmp_path: Path, password: str) -> None:
    model = compose_json(_built(tmp_path, password))
    redis = model["services"]["redis"]
    assert redis["environment"]["REDIS_PASSWORD"] == password
    assert redis["environment"]["REDISCLI_AUTH"] == password
    for name, service in model["services"].items():
        assert password not in _command_lines(service), name
    assert redis["command"][:2] == ["sh", "-c"] and "--requirepass" not in redis["command"][2]


def test_stack_and_compose_start_redis_the_same_way(tmp_path: Path) -> None:
    single = yaml.safe_load((_built(tmp_path / "one", "x-0123456789abcdef-0123456789") / "docker-compose.yml").read_text())
    stack = yaml.safe_load((_built(tmp_path / "many", "x-0123456789abcdef-0123456789", "multi-host-2") / "stack.yml").read_text())
    assert stack["services"]["redis"]["command"] == single["services"]["redis"]["command"]
    assert stack["services"]["redis"]["healthcheck"]["test"] == single["services"]["redis"]["healthcheck"]["test"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisUnderTest:
    """The generated start command, run by sh with Debian's redis-server, moved to a loopback port."""

    def __init__(self, folder: Path, service: dict[str, Any], password: str) -> None:
        _tool("redis-server")
        self.port = _free_port()
        self.listen = int(service["healthcheck"]["test"][1].split("-p ")[1].split()[0])
        program, flag, script = service["command"]
        assert (program, flag) == ("sh", "-c")
        moved = script.replace(f"--port {self.listen} ", f"--port {self.port} --bind 127.0.0.1 ")
        assert moved != script
        self.folder = folder
        self.process = subprocess.Popen(
            [program, flag, moved], cwd=folder, env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": password}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.healthcheck = service["healthcheck"]["test"][1].replace(f"-p {self.listen} ", f"-p {self.port} ")

    def cli(self, *args: str, auth: str | None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"]} | ({"REDISCLI_AUTH": auth} if auth is not None else {})
        return subprocess.run([_tool("redis-cli"), "-p", str(self.port), *args], env=env, capture_output=True, text=True, timeout=30, check=False)

    def wait_ready(self, password: str) -> None:
        deadline = time.monotonic() + 30
        while self.cli("ping", auth=password).stdout.strip() != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start: {self.process.stdout.read() if self.process.stdout else ''}")
            time.sleep(0.05)

    def health(self, auth: str | None) -> int:
        env = {"PATH": os.environ["PATH"]} | ({"REDISCLI_AUTH": auth} if auth is not None else {})
        return subprocess.run(["sh", "-c", self.healthcheck], env=env, capture_output=True, timeout=30, check=False).returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def redis_for(tmp_path: Path) -> Iterator[Any]:
    started: list[RedisUnderTest] = []

    def start(password: str) -> RedisUnderTest:
        service = compose_json(_built(tmp_path / f"site-{len(started)}", password))["services"]["redis"]
        server = RedisUnderTest(tmp_path, service, password)
        started.append(server)
        server.wait_ready(password)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("password", HOSTILE, ids=["injection", "options", "long"])
def test_real_redis_requires_exactly_the_sidecar_password(redis_for: Any, password: str) -> None:
    server = redis_for(password)
    assert server.cli("ping", auth=None).stdout.strip() == "NOAUTH Authentication required."
    assert server.cli("ping", auth=password[:-1]).stdout.strip() != "PONG"
    assert server.cli("config", "get", "requirepass", auth=password).stdout.rstrip("\n") == f"requirepass\n{password}".rstrip("\n")
    assert server.health(password) == 0, "the healthcheck fails with the right password"
    assert server.health(None) != 0, "redis-cli answers NOAUTH and exits 0: the healthcheck must look for PONG"
    assert server.health("wrong") != 0
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert password.encode() not in cmdline and b"requirepass" not in cmdline


def test_an_empty_password_stops_the_container_instead_of_starting_an_open_redis(tmp_path: Path) -> None:
    service = compose_json(_built(tmp_path, "x-0123456789abcdef-0123456789"))["services"]["redis"]
    _tool("redis-server")
    done = subprocess.run(service["command"], cwd=tmp_path, env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": ""}, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "REDIS_PASSWORD is empty" in done.stderr
