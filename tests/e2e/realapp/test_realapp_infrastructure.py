"""The non-application images of the real-application tier, run by the generated compose file unmodified.

The WebRTC variant of the e2e profile is built with secrets holding every
hard character ($ # @ / % ' " \\ and spaces); `infrastructure_images` builds
(or loads from cache) PostgreSQL, Redis, MinIO, Asterisk, Kamailio and
rtpengine under the compose file's own image references, and `compose up
--wait` must make them healthy with the generated health checks. Then each
contract is checked from outside, with the clients the application uses, and
each refusal too: PostgreSQL refuses a wrong password over the network, Redis
a wrong one, the MinIO stand-in other keys (boto3), the Asterisk stand-in a
wrong AMI secret (panoramisk) and wrong ARI credentials. The two nginx images
(the edge's nginx-unprivileged and the frontend's nginx:alpine base) are run
as the compose file runs them. Needs `make e2e` (root, Docker, mmdebstrap and
the Debian archive on a cold cache).
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import run_cli
from tests.e2e.e2e_profile import E2E_PROFILE
from tests.e2e.engine import DockerEngine, EngineUnavailable
from tests.e2e.realapp import rootfs, services
from tests.e2e.realapp.test_realapp_standins_offline import HARD_SECRET, ami_login

pytestmark = pytest.mark.e2e

SERVICES = ("postgresql", "redis", "minio", "asterisk", "kamailio", "rtpengine")
SECRET_KEYS = ("postgres_password", "redis_password", "minio_root_password", "ami_password", "dialer_ami_password", "ari_password")
UP_TIMEOUT_SECONDS = 240


@dataclass(frozen=True)
class Stack:
    engine: DockerEngine
    folder: Path
    compose: dict[str, Any]
    images: dict[str, str]
    secrets: dict[str, str]

    @property
    def network(self) -> str:
        return f"{self.compose['name']}_omnivoip_net"

    def run(self, *args: str) -> Any:
        return self.engine.compose(self.folder, *args)

    def exec(self, service: str, *command: str) -> Any:
        return self.engine.compose(self.folder, "exec", "-T", service, *command)

    def address(self, service: str) -> str:
        container = self.engine.compose(self.folder, "ps", "-q", service).stdout.split()[0]
        networks = self.engine.inspect(container)[0]["NetworkSettings"]["Networks"]
        return str(networks[self.network]["IPAddress"])

    def diagnostics(self) -> str:
        status = self.engine.compose(self.folder, "ps", "-a")
        logs = self.engine.compose(self.folder, "logs", "--no-color", "--tail", "20")
        return f"{status.stdout}{status.stderr}\n{logs.stdout[-8000:]}{logs.stderr[-2000:]}"


@pytest.fixture(scope="module")
def stack(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("realapp-infra")
    profile = folder / "omnivoip.toml"
    profile.write_text(E2E_PROFILE + "\n[components]\nwebrtc = true\n")
    secrets = {key: f"{HARD_SECRET}-{key}" for key in SECRET_KEYS}
    sidecar = folder / "omnivoip.secrets.toml"
    sidecar.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in secrets.items()))
    sidecar.chmod(0o600)
    out = folder / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, f"omnigen build failed:\n{built.stderr}"
    assert tomllib.loads(sidecar.read_text())["ami_password"] == secrets["ami_password"]
    compose = yaml.safe_load((out / "docker-compose.yml").read_text())
    try:
        images = services.infrastructure_images(engine, out / "docker-compose.yml")
    except EngineUnavailable as reason:
        pytest.skip(f"\n{'!' * 70}\nREAL-APPLICATION IMAGES SKIPPED: they cannot be built here:\n{reason}\n{'!' * 70}")
    deployed = Stack(engine, out, compose, images, secrets)
    up = engine.compose(
        out, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_SECONDS), *SERVICES, timeout=UP_TIMEOUT_SECONDS + 60
    )
    try:
        assert up.returncode == 0, f"compose up --wait failed:\n{up.stdout}\n{up.stderr}\n{deployed.diagnostics()}"
        yield deployed
    finally:
        engine.compose(out, "down", "--volumes", "--timeout", "5")
        for record in rootfs.BUILD_LOG:
            print(f"image {record.name}: {record.source} in {record.seconds:.1f} s, {record.size_bytes / 1e6:.0f} MB")


def test_every_service_gets_the_image_its_compose_entry_names(stack: Stack) -> None:
    assert set(stack.images) == {*SERVICES, "nginx"}
    for service, reference in stack.images.items():
        assert stack.compose["services"][service]["image"] == reference
    assert set(services.INFRASTRUCTURE_SERVICES) == set(stack.images)


def test_every_service_is_healthy_by_its_generated_check(stack: Stack) -> None:
    states = {}
    for line in stack.run("ps", "--format", "json").stdout.splitlines():
        entry = json.loads(line)
        states[entry["Service"]] = entry["Health"]
    assert states == dict.fromkeys(SERVICES, "healthy"), stack.diagnostics()


def _psql(stack: Stack, password: str) -> Any:
    # The e2e profile's database and user are both "omnivoip" (.env POSTGRES_DB, POSTGRES_USER).
    image, database = stack.images["postgresql"], "omnivoip"
    return stack.engine.docker(
        "run", "--rm", "--network", stack.network, "--user", "postgres", "-e", f"PGPASSWORD={password}", image,
        "psql", "-h", "postgresql", "-U", "omnivoip", "-d", database, "-tAc", "select current_user, current_database()",
        check=False, timeout=120,
    )  # fmt: skip


def test_postgres_initialised_the_cluster_and_checks_the_password_over_the_network(stack: Stack) -> None:
    right = _psql(stack, stack.secrets["postgres_password"])
    assert right.returncode == 0, right.stderr
    assert right.stdout.strip() == "omnivoip|omnivoip"
    wrong = _psql(stack, "wrong")
    assert wrong.returncode != 0
    assert 'password authentication failed for user "omnivoip"' in wrong.stderr
    hba = stack.exec("postgresql", "sh", "-c", 'tail -n 3 "$PGDATA/pg_hba.conf"').stdout
    assert "host all all all scram-sha-256" in hba
    assert stack.exec("postgresql", "id", "-u").stdout.strip() == "70"


def test_redis_answers_with_its_password_only(stack: Stack) -> None:
    assert stack.exec("redis", "redis-cli", "-p", "6379", "ping").stdout.strip() == "PONG"
    wrong = stack.engine.docker(
        "run", "--rm", "--network", stack.network, stack.images["redis"], "redis-cli", "-h", "redis", "-a", "wrong", "--no-auth-warning", "ping",
        check=False, timeout=60,
    )  # fmt: skip
    assert "WRONGPASS" in wrong.stdout + wrong.stderr
    assert stack.exec("redis", "id", "-u").stdout.strip() == "999"
    # The server itself runs as redis from /data, where --appendonly writes.
    assert stack.exec("redis", "sh", "-c", "ls /data").returncode == 0


def _s3(endpoint: str, key: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )


def test_minio_stores_objects_for_its_root_keys_only(stack: Stack) -> None:
    endpoint = f"http://{stack.address('minio')}:9000"
    client = _s3(endpoint, "omnivoip", stack.secrets["minio_root_password"])
    client.create_bucket(Bucket="omnivoip")
    client.put_object(Bucket="omnivoip", Key="media/hello.txt", Body=b"hello", ContentType="text/plain")
    assert client.get_object(Bucket="omnivoip", Key="media/hello.txt")["Body"].read() == b"hello"
    for key, secret, code in [("omnivoip", "wrong", "SignatureDoesNotMatch"), ("minioadmin", "minioadmin", "InvalidAccessKeyId")]:
        with pytest.raises(ClientError) as refused:
            _s3(endpoint, key, secret).get_object(Bucket="omnivoip", Key="media/hello.txt")
        assert refused.value.response["Error"]["Code"] == code
    assert stack.exec("minio", "mc", "ready", "local").returncode == 0


def test_asterisk_lets_the_backend_and_the_dialer_in_and_nobody_else(stack: Stack) -> None:
    host = stack.address("asterisk")
    for user, key in [("omnivoip", "ami_password"), ("dialer", "dialer_ami_password")]:
        accepted, fields = asyncio.run(ami_login(5038, user, stack.secrets[key], host=host))
        assert accepted and fields["Ping"] == "Pong", fields
    for user, secret in [("omnivoip", "wrong"), ("omnivoip", stack.secrets["dialer_ami_password"]), ("admin", "admin")]:
        accepted, fields = asyncio.run(ami_login(5038, user, secret, host=host))
        assert not accepted and fields["Message"] == "Authentication failed"
    uptime = stack.exec("asterisk", "asterisk", "-rx", "core show uptime")
    assert uptime.returncode == 0 and uptime.stdout.startswith("System uptime:")
    assert stack.exec("asterisk", "id", "-un").stdout.strip() == "asterisk"


def _ari_status(host: str, user: str, password: str) -> int:
    import base64

    request = urllib.request.Request(f"http://{host}:8088/ari/asterisk/info")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_asterisk_ari_takes_the_generated_password_only(stack: Stack) -> None:
    host = stack.address("asterisk")
    assert _ari_status(host, "omnivoip", stack.secrets["ari_password"]) == 200
    assert _ari_status(host, "omnivoip", "wrong") == 401


def test_kamailio_and_rtpengine_run_debians_daemons_with_the_component_commands(stack: Stack) -> None:
    assert "kamailio 5.6" in stack.exec("kamailio", "kamailio", "-v").stdout
    assert stack.exec("kamailio", "kamcmd", "-s", "udp:127.0.0.1:2046", "core.uptime").returncode == 0
    for service in ("kamailio", "rtpengine"):
        config = stack.engine.inspect(stack.images[service])[0]["Config"]
        assert config["User"] == ""  # root, as components/kamailio and components/rtpengine run
    assert stack.engine.inspect(stack.images["rtpengine"])[0]["Config"]["Cmd"] == [
        "rtpengine", "--config-file=/etc/rtpengine/rtpengine.conf", "--foreground",
    ]  # fmt: skip


def _process_users(engine: DockerEngine, container: str) -> set[tuple[str, str]]:
    listing = engine.docker(
        "exec", container, "sh", "-c", "for p in /proc/[0-9]*; do echo \"$(cat $p/comm) $(awk '/^Uid:/{print $2}' $p/status)\"; done"
    ).stdout
    return {tuple(line.split()) for line in listing.splitlines() if line.startswith("nginx")}  # type: ignore[misc]


def _run_nginx(stack: Stack, image: str, name: str, *options: str) -> None:
    stack.engine.docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        stack.network,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        *options,
        image,
    )


def _wait_for_page(stack: Stack, container: str, port: int) -> str:
    for _attempt in range(40):
        page = stack.engine.docker("exec", container, "wget", "-q", "-O", "-", f"http://127.0.0.1:{port}/", check=False)
        if page.returncode == 0:
            return str(page.stdout)
        time.sleep(0.25)
    raise AssertionError(stack.engine.docker("logs", container, check=False).stderr)


def test_the_edge_nginx_image_runs_unprivileged_on_8080(stack: Stack) -> None:
    name = "realapp-nginx-edge"
    _run_nginx(stack, stack.images["nginx"], name)
    try:
        assert "Welcome to nginx" in _wait_for_page(stack, name, 8080)
        assert _process_users(stack.engine, name) == {("nginx", "101")}
    finally:
        stack.engine.docker("rm", "-f", name, check=False)


def test_the_frontend_base_runs_its_master_as_root_and_workers_as_nginx(stack: Stack) -> None:
    name = "realapp-nginx-alpine"
    _run_nginx(stack, services.NGINX_ALPINE, name, "--cap-add", "CHOWN", "--cap-add", "SETGID", "--cap-add", "SETUID")
    try:
        assert "Welcome to nginx" in _wait_for_page(stack, name, 80)
        assert _process_users(stack.engine, name) == {("nginx", "0"), ("nginx", "101")}
    finally:
        stack.engine.docker("rm", "-f", name, check=False)
    # Without those capabilities it stops, as docs/application.md says Debian's nginx does.
    stack.engine.docker("run", "--name", name, "--cap-drop", "ALL", services.NGINX_ALPINE, check=False, timeout=60)
    try:
        logs = stack.engine.docker("logs", name, check=False)
        assert "Operation not permitted" in logs.stdout + logs.stderr
    finally:
        stack.engine.docker("rm", "-f", name, check=False)


def test_images_are_reused_from_the_engine_and_from_the_cache(stack: Stack) -> None:
    tag = services.redis_image(stack.engine)
    assert rootfs.BUILD_LOG[-1].source == "engine"
    cached = rootfs.cache_folder() / f"redis-{tag.rsplit(':', 1)[1]}.tar"
    assert cached.is_file()
    stack.engine.docker("rmi", tag)
    assert services.redis_image(stack.engine) == tag
    assert rootfs.BUILD_LOG[-1].source == "cache"
