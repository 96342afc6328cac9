"""The real OmniVoIP application, built from its source, deployed by omnigen and running (issue 16, step 4).

For the default profile and the WebRTC profile (components.webrtc), with a
secrets sidecar whose every value holds `$ # @ / % ' " \\` and spaces:

1. `omnigen build` renders the deployment; a copy of the application's source
   (tests/reference/omnivoip-app, MIT) is laid beside it as the profile's
   `build.source` checkout.
2. Images. The application's (backend, websockets, dialer API and worker,
   frontend) are built from that checkout by `docker compose build` on the
   generated compose file (tests/e2e/realapp/appimages.py says exactly what
   differs from a user's build: the `python:3.11-slim` base is Debian's
   python3.11 made with mmdebstrap and installs from a pinned wheelhouse
   filled by pip on the host; the Dockerfiles' `apt-get` steps fetch from
   deb.debian.org over the host network; the frontend is built by npm on the
   host and its image is the Dockerfile's second stage on an `nginx:alpine`
   made from Debian's nginx). PostgreSQL, Redis, nginx, Kamailio and
   rtpengine are Debian's real daemons; Asterisk and MinIO are stand-ins no
   kinder than the real servers (tests/e2e/realapp/services.py).
3. `compose up --no-build --wait` (the compose file says `pull_policy: build`;
   every image was built or loaded from the cache in step 2) makes every
   container healthy by its generated health check.
4. The checks: Django's migrations ran against PostgreSQL with the generated
   credentials; the admin login page, `/api/docs/` and the web UI answer
   through nginx over TLS with the generated certificate; the websocket
   service accepts a connection through nginx; the dialer API's `/health`
   answers, logged in to AMI; a Celery task queued with the dialer's own
   Celery app reaches the dialer worker; the backend's AMI library
   (panoramisk) logs in to Asterisk with the generated credentials from
   inside the backend container, and a wrong secret is refused.

Limits of the application itself (docs/application.md), tested as they are:
the websocket service's `/ws` echoes what it receives and subscribes to
nothing in Redis, so no pub/sub message can be relayed to a browser; the
dialer API queues no Celery task itself (it only writes campaign state to
Redis), so the task is queued with the dialer worker's own Celery app, as
its periodic tasks are.

Needs `make e2e` (root, Docker, mmdebstrap, npm; the Debian archive, PyPI and
the npm registry on a cold cache). Built images are cached under
${OMNIGEN_E2E_CACHE:-~/.cache/omnigen-e2e} by content hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_cli
from tests.e2e.engine import DockerEngine, EngineUnavailable
from tests.e2e.realapp import appimages, rootfs, services
from tests.e2e.realapp.wheelhouse import WheelhouseUnavailable

pytestmark = pytest.mark.e2e

APPLICATION = Path(__file__).resolve().parents[2] / "reference" / "omnivoip-app"
# Every hard character for .env, YAML, URLs, shells, SQL and Asterisk's configs, and spaces.
HARD_SECRET = "p$a #s@w/o%r'd\"x\\ y z"
SECRET_KEYS = (
    "postgres_password", "redis_password", "minio_root_password", "django_secret_key", "django_admin_password",
    "ami_password", "dialer_ami_password", "ari_password", "webrtc_auth_secret",
)  # fmt: skip
UP_TIMEOUT_SECONDS = 600
HTTPS_PORT = 18443
PROFILE = """\
schema_version = 2

# The application's images are built from the checkout laid beside the profile.
[build]
source = "omnivoip"

[project]
name = "omnigen-realapp"

[host]
kind = "bare-metal"

[network]
subnet = "10.231.78.0/24"
bind_ip = "127.0.0.1"

[capacity]
concurrent_calls = 10

[rtp]
start = 32000

[ports]
sip = 15070
http = 18080
https = 18443

# One replica each: on an engine without overlay (vfs) every container is a full copy of its image.
[workers]
celery = 1
dialer = 1
"""
PROFILES = {"default": PROFILE, "webrtc": PROFILE + "\n[components]\nwebrtc = true\n"}


@dataclass(frozen=True)
class RealApp:
    """The application, up on the private engine."""

    engine: DockerEngine
    folder: Path
    compose_file: dict[str, Any]
    environments: dict[str, dict[str, str]]
    secrets: dict[str, str]

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.engine.compose(self.folder, *args, timeout=timeout)

    def exec(
        self, service: str, *command: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        options = [argument for key, value in (env or {}).items() for argument in ("--env", f"{key}={value}")]
        return self.compose("exec", "-T", *options, service, *command, timeout=timeout)

    def diagnostics(self) -> str:
        status = self.compose("ps", "-a")
        logs = self.compose("logs", "--no-color", "--tail", "25")
        return f"{status.stdout}{status.stderr}\n{logs.stdout[-12000:]}{logs.stderr[-2000:]}"


def _environments(engine: DockerEngine, out: Path) -> dict[str, dict[str, str]]:
    """Every service's environment as Compose itself interpolates it from the generated .env."""
    result = engine.compose(out, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {name: dict(service.get("environment") or {}) for name, service in json.loads(result.stdout)["services"].items()}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def realapp(request: pytest.FixtureRequest, engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    folder = tmp_path_factory.mktemp(f"realapp-{request.param}")
    shutil.copytree(APPLICATION, folder / "omnivoip")
    profile = folder / "omnivoip.toml"
    profile.write_text(PROFILES[request.param])
    secrets = {key: f"{HARD_SECRET}-{key}" for key in SECRET_KEYS}
    # Kamailio reads its secret through #!defenvs, which cannot carry `"` or `\`: the sidecar refuses them there.
    secrets["webrtc_auth_secret"] = secrets["webrtc_auth_secret"].replace('"', "").replace("\\", "")
    sidecar = folder / "omnivoip.secrets.toml"
    sidecar.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in secrets.items()))
    sidecar.chmod(0o600)
    out = folder / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, f"omnigen build failed:\n{built.stderr}"
    assert tomllib.loads(sidecar.read_text()) == secrets, "build must keep the sidecar's own secrets"
    assert (out / "certs" / "fullchain.pem").is_file(), "build writes the self-signed certificate nginx serves (docs/tls.md)"
    compose_file = yaml.safe_load((out / "docker-compose.yml").read_text())
    try:
        infrastructure = services.infrastructure_images(engine, out / "docker-compose.yml")
        appimages.build_application_images(engine, out, skip=set(infrastructure.values()))
    except (EngineUnavailable, WheelhouseUnavailable) as reason:
        pytest.skip(f"\n{'!' * 70}\nREAL-APPLICATION IMAGES SKIPPED: they cannot be built here:\n{reason}\n{'!' * 70}")
    app = RealApp(engine, out, compose_file, _environments(engine, out), secrets)
    up = app.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", str(UP_TIMEOUT_SECONDS), timeout=UP_TIMEOUT_SECONDS + 120)
    try:
        assert up.returncode == 0, f"compose up --wait failed:\n{up.stdout}\n{up.stderr}\n{app.diagnostics()}"
        yield app
    finally:
        app.compose("down", "--volumes", "--timeout", "10", timeout=300)
        for record in rootfs.BUILD_LOG:
            print(f"image {record.name}: {record.source} in {record.seconds:.1f} s, {record.size_bytes / 1e6:.0f} MB")
        rootfs.BUILD_LOG.clear()


# --- images and health -----------------------------------------------------------------------------


def _image_config(engine: DockerEngine, reference: str) -> dict[str, Any]:
    config = engine.inspect(reference)[0]["Config"]
    return {
        "User": config.get("User") or "",
        "Entrypoint": config.get("Entrypoint"),
        "Cmd": config.get("Cmd"),
        "ExposedPorts": set(config.get("ExposedPorts") or {}),
    }


def _dockerfile_config(engine: DockerEngine, dockerfile: str) -> dict[str, Any]:
    """USER, EXPOSE, ENTRYPOINT and CMD an image built from a Dockerfile must have: its last stage's, over its base image's."""
    lines = dockerfile.replace("\\\n", " ").splitlines()
    last_stage = max(index for index, line in enumerate(lines) if line.strip().upper().startswith("FROM "))
    config: dict[str, Any] = {}
    for line in lines[last_stage:]:
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        instruction, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
        if instruction == "FROM":
            config = _image_config(engine, rest.split()[0])
        elif instruction == "USER":
            config["User"] = rest.strip()
        elif instruction == "ENTRYPOINT":
            config["Entrypoint"] = json.loads(rest)
        elif instruction == "CMD":
            config["Cmd"] = json.loads(rest)
        elif instruction == "EXPOSE":
            config["ExposedPorts"] |= {port if "/" in port else f"{port}/tcp" for port in rest.split()}
    return config


def test_application_images_keep_their_dockerfiles_user_ports_entrypoint_and_command(realapp: RealApp) -> None:
    built = {
        str(service["image"]): (realapp.folder / service["build"]["context"]).resolve()
        for name, service in realapp.compose_file["services"].items()
        if "build" in service and name not in services.INFRASTRUCTURE_SERVICES
    }
    assert {reference.split(":")[0] for reference in built} == {
        "omnivoip/backend",
        "omnivoip/websockets",
        "omnivoip/dialer-api",
        "omnivoip/dialer-worker",
        "omnivoip/frontend",
    }
    for reference, context in built.items():
        expected = _dockerfile_config(realapp.engine, (context / "Dockerfile").read_text())
        assert _image_config(realapp.engine, reference) == expected, reference


def test_every_container_is_running_and_healthy(realapp: RealApp) -> None:
    listed = realapp.compose("ps", "--all", "--format", "json").stdout.splitlines()
    states = {entry["Service"]: (entry["State"], entry["Health"]) for entry in map(json.loads, listed)}
    assert set(states) == set(realapp.compose_file["services"])
    assert {service: state for service, state in states.items() if state != ("running", "healthy")} == {}, realapp.diagnostics()


# --- the checks --------------------------------------------------------------------------------------


def test_django_migrations_ran_against_postgresql_with_the_generated_credentials(realapp: RealApp) -> None:
    backend_env = realapp.environments["django-app"]
    user, database, host = backend_env["POSTGRES_USER"], backend_env["POSTGRES_DB"], backend_env["POSTGRES_HOST"]
    # From the backend's container (its image installs psql) over the compose network, where the official
    # image's pg_hba asks for the password (scram-sha-256); inside the PostgreSQL container loopback is trusted.
    query = "SELECT app, count(*) FROM django_migrations GROUP BY app ORDER BY app"
    result = realapp.exec(
        "django-app", "psql", "-h", host, "-U", user, "-d", database, "-tAF", " ", "-c", query,
        env={"PGPASSWORD": realapp.secrets["postgres_password"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    applied = dict(line.split() for line in result.stdout.splitlines() if line)
    # Django's own apps and the application's custom user model (AUTH_USER_MODEL users.User).
    assert {"admin", "auth", "contenttypes", "sessions", "users", "django_celery_beat"} <= set(applied), applied
    wrong = realapp.exec(
        "django-app", "psql", "-h", host, "-U", user, "-d", database, "-tAc", "SELECT 1", env={"PGPASSWORD": "not-the-password"}
    )
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    # The backend sees the same: every migration applied, through its own connection settings.
    plan = realapp.exec("django-app", "python", "manage.py", "showmigrations", "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "[X]  users." in plan.stdout and "[ ]" not in plan.stdout


def test_the_settings_overlay_works_around_the_backend_images_defects(realapp: RealApp) -> None:
    # The image as built today has neither module its code imports (docs/application.md): no test kindness.
    for module in ("pkg_resources", "django_redis"):
        probe = realapp.exec("django-app", "python", "-c", f"import {module}")
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, module
    # Through the overlay, Django's cache (sessions live in it) works on Redis with the generated password.
    key = f"omnigen-{uuid.uuid4().hex[:12]}"
    check = f"from django.core.cache import cache; cache.set('{key}', 'ok', 60); print(cache.get('{key}'))"
    result = realapp.exec("django-app", "python", "manage.py", "shell", "-c", check)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ok"
    redis_cli = ("redis-cli", "-p", realapp.environments["django-app"]["REDIS_PORT"], "-n", "1")
    assert key in realapp.exec("redis", *redis_cli, "--scan", "--pattern", f"*{key}*").stdout


def _tls_context(realapp: RealApp) -> ssl.SSLContext:
    # The generated certificate is the only trust anchor: nginx must serve exactly it, for 127.0.0.1.
    return ssl.create_default_context(cafile=str(realapp.folder / "certs" / "fullchain.pem"))


def _https_get(realapp: RealApp, path: str) -> tuple[int, str, str]:
    request = urllib.request.Request(f"https://127.0.0.1:{HTTPS_PORT}{path}")
    with urllib.request.urlopen(request, timeout=30, context=_tls_context(realapp)) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode(errors="replace")


def test_login_page_answers_through_nginx_over_tls(realapp: RealApp) -> None:
    status, content_type, body = _https_get(realapp, "/admin/login/")
    assert status == 200 and content_type.startswith("text/html")
    assert 'name="csrfmiddlewaretoken"' in body and 'name="password"' in body
    # Its stylesheet comes from collectstatic's volume, which nginx serves read-only.
    status, content_type, _ = _https_get(realapp, "/static/admin/css/login.css")
    assert (status, content_type) == (200, "text/css")


def test_api_docs_answer_through_nginx_over_tls(realapp: RealApp) -> None:
    status, content_type, body = _https_get(realapp, "/api/docs/")
    assert status == 200 and content_type.startswith("text/html")
    assert "swagger" in body.lower()
    status, _, schema = _https_get(realapp, "/api/schema/")
    assert status == 200 and "openapi" in schema


def test_web_ui_answers_through_nginx_over_tls(realapp: RealApp) -> None:
    status, content_type, body = _https_get(realapp, "/")
    assert status == 200 and content_type.startswith("text/html")
    assert '<div id="root">' in body
    script = body.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/assets/index-") and script.endswith(".js")
    status, content_type, _ = _https_get(realapp, script)
    assert status == 200 and "javascript" in content_type


def _websocket_exchange(realapp: RealApp, path: str, message: str) -> str:
    """One RFC 6455 text message out and one back, over TLS (stdlib only: no client library is needed for one frame)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with (
        socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30) as raw,
        _tls_context(realapp).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{HTTPS_PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = tls.recv(4096)
            assert chunk, f"connection closed during the handshake: {received!r}"
            received += chunk
        head, data = received.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        payload, mask = message.encode(), os.urandom(4)
        assert len(payload) < 126
        tls.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload)))
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            chunk = tls.recv(4096)
            assert chunk, "connection closed before the answer"
            data += chunk
        assert data[0] == 0x81 and data[1] & 0x7F < 126, f"not one short unmasked text frame: {data[:4]!r}"
        return data[2 : 2 + (data[1] & 0x7F)].decode()


def test_websocket_service_accepts_a_connection_through_nginx(realapp: RealApp) -> None:
    message = f"omnigen-{uuid.uuid4().hex[:12]}"
    # nginx forwards wss://HOST/channels/ws to the service's /ws, which echoes (components/websockets/main.py:52-62).
    assert _websocket_exchange(realapp, "/channels/ws", message) == f"Echo: {message}"


SUBSCRIBE = """
import asyncio, os, sys
import redis.asyncio as aioredis

async def main():
    client = await aioredis.from_url(os.environ["REDIS_URL"], decode_responses=True)  # as main.py:36 connects
    pubsub = client.pubsub()
    await pubsub.subscribe(sys.argv[1])
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=90)
        if message is not None:
            print(message["data"], flush=True)
            return

asyncio.run(main())
"""


def test_websocket_service_receives_a_redis_pub_sub_message_with_its_generated_redis_url(realapp: RealApp) -> None:
    # The service's /ws relays nothing from Redis yet (main.py:52-62 only echoes, docs/application.md), so the
    # relay's other half is checked as the service would run it: its REDIS_URL (the hard password
    # percent-encoded) subscribes with its own redis.asyncio, and a message published in Redis arrives.
    channel, message = f"omnigen-{uuid.uuid4().hex[:12]}", f"call {uuid.uuid4().hex[:8]} answered"
    received: list[subprocess.CompletedProcess[str]] = []
    subscriber = threading.Thread(
        target=lambda: received.append(realapp.exec("websockets", "python", "-c", SUBSCRIBE, channel, timeout=150))
    )
    subscriber.start()
    redis_cli = ("redis-cli", "-p", realapp.environments["django-app"]["REDIS_PORT"])
    delivered_to = "0"
    for _ in range(120):  # until the subscriber listens: PUBLISH answers how many clients received it
        delivered_to = realapp.exec("redis", *redis_cli, "PUBLISH", channel, message).stdout.strip()
        if delivered_to != "0":
            break
        time.sleep(0.5)
    subscriber.join(timeout=180)
    assert delivered_to == "1", realapp.diagnostics()
    assert received and received[0].returncode == 0, received and received[0].stderr
    assert received[0].stdout.strip() == message


def test_dialer_api_health_answers_and_its_ami_login_succeeded(realapp: RealApp) -> None:
    # From the dialer worker, at the DIALER_API_URL it is given: the address the dialer itself uses.
    probe = "import json, os, urllib.request as r; print(r.urlopen(os.environ['DIALER_API_URL'] + '/health', timeout=10).read().decode())"
    result = realapp.exec("dialer-worker", "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    health = json.loads(result.stdout)
    assert health["status"] == "healthy"
    # main.py:302-313 logs in at startup with ASTERISK_AMI_USER/SECRET: the generated dialer user.
    assert health["ami_connected"] is True, health


def test_a_celery_task_queued_by_the_dialer_reaches_the_worker(realapp: RealApp) -> None:
    campaign = 900000 + int(uuid.uuid4().hex[:5], 16)
    # A campaign the dialer API would have written (main.py:371-380), in the dialer's Redis database.
    redis_cli = ("redis-cli", "-p", realapp.environments["django-app"]["REDIS_PORT"], "-n", "3")
    assert realapp.exec("redis", *redis_cli, "HSET", f"campaign:{campaign}", "status", "completed").returncode == 0
    # Queued with the dialer's own Celery app (tasks.py:34-48: broker and results at REDIS_URL, whose password
    # is percent-encoded); dialer.cleanup_campaign runs in the worker and deletes the campaign's state.
    queue = (
        f"import json, tasks; result = tasks.cleanup_campaign_task.delay({campaign}); "
        "print(json.dumps({'id': result.id, 'value': result.get(timeout=120)}))"
    )
    result = realapp.exec("dialer-worker", "python", "-c", queue, timeout=180)
    assert result.returncode == 0, f"{result.stderr}\n{realapp.diagnostics()}"
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["value"] == {"status": "ok"}
    assert realapp.exec("redis", *redis_cli, "EXISTS", f"campaign:{campaign}").stdout.strip() == "0"
    logs = realapp.compose("logs", "--no-color", "dialer-worker").stdout
    assert f"Task dialer.cleanup_campaign[{answer['id']}] succeeded" in logs


AMI_LOGIN = """
import asyncio, json, sys
from django.conf import settings
from panoramisk import Manager

async def login(secret):
    manager = Manager(host=settings.ASTERISK_AMI_HOST, port=int(settings.ASTERISK_AMI_PORT), username=settings.ASTERISK_AMI_USER,
                      secret=secret, ping_delay=3600, reconnect_timeout=3600, loop=asyncio.get_running_loop())
    await manager.connect()
    try:
        while manager.authenticated_future is None:
            await asyncio.sleep(0.01)
        answer = await asyncio.wait_for(manager.authenticated_future, 15)
        pong = None
        if manager.authenticated:
            pong = (await asyncio.wait_for(manager.send_action({"Action": "Ping"}), 15)).get("Ping")
        return {"authenticated": bool(manager.authenticated), "message": str(answer.get("Message")), "ping": pong}
    finally:
        manager.close()

async def main():
    good = await login(settings.ASTERISK_AMI_SECRET)
    wrong = await login(settings.ASTERISK_AMI_SECRET + "x")
    print(json.dumps({"user": settings.ASTERISK_AMI_USER, "good": good, "wrong": wrong}))

asyncio.run(main())
"""


def test_backend_ami_library_logs_in_to_asterisk_with_the_generated_credentials(realapp: RealApp) -> None:
    # In the backend container, with the settings its code reads (settings/base.py:288-291), so the generated env is used.
    result = realapp.exec("django-app", "python", "manage.py", "shell", "-c", AMI_LOGIN, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["user"] == realapp.environments["django-app"]["ASTERISK_AMI_USER"]
    assert answer["good"] == {"authenticated": True, "message": "Authentication accepted", "ping": "Pong"}, answer
    assert answer["wrong"]["authenticated"] is False and answer["wrong"]["message"] == "Authentication failed", answer
    # The secret the backend used is the sidecar's, unchanged by .env and YAML quoting.
    assert realapp.exec("django-app", "printenv", "ASTERISK_AMI_SECRET").stdout.rstrip("\n") == realapp.secrets["ami_password"]


def test_stack_goes_down_cleanly(realapp: RealApp) -> None:
    down = realapp.compose("down", "--volumes", "--timeout", "10", timeout=300)
    assert down.returncode == 0, down.stderr
    assert realapp.compose("ps", "--all", "--quiet").stdout.strip() == ""
