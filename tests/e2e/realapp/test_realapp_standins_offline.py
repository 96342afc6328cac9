"""The real-application tier's stand-ins and image recipes, judged without a Docker engine.

These run in `make test` (no e2e marker): the MinIO stand-in's SigV4 check
against requests signed by botocore itself (the signer the backend uses), the
Asterisk stand-in's AMI against panoramisk (the backend's AMI library) and its
ARI against HTTP basic auth, both on loopback and stopped by pid, and the
content hash that names every image.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from panoramisk import Manager

from tests.e2e.realapp.rootfs import ImageConfig, ImageFile, content_hash
from tests.e2e.realapp.standin_minio import S3Error, verify

HERE = Path(__file__).resolve().parent
# Every character the issue names as hard for secrets: $ # @ / % ' " \ and spaces.
HARD_SECRET = "p$a #s@w/o%r'd\"x\\ y z"
KEY = "omnivoip"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the stand-in exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


# --- MinIO: SigV4 as botocore signs it ------------------------------------------------------


def signed(
    method: str, url: str, body: bytes = b"", key: str = KEY, secret: str = HARD_SECRET, when: dt.datetime | None = None
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    S3SigV4Auth(Credentials(key, secret), "s3", REGION).add_auth(request)
    return request


def check(request: AWSRequest, body: bytes = b"", now: dt.datetime | None = None) -> None:
    split = urlsplit(request.url)
    headers = {name.lower(): str(value) for name, value in request.headers.items()}
    headers.setdefault("host", split.netloc)
    query = parse_qsl(split.query, keep_blank_values=True)
    verify(request.method, split.path, query, headers, body, (KEY, HARD_SECRET), REGION, now or dt.datetime.now(dt.UTC))


def test_a_request_botocore_signs_with_the_root_keys_is_accepted() -> None:
    check(signed("PUT", "http://minio:9000/omnivoip/media/a%20b%2Bc.txt?x-id=PutObject", b"hello"), b"hello")
    check(signed("GET", "http://minio:9000/omnivoip?list-type=2&prefix=media%2F&delimiter=%2F"))


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        (KEY, "wrong-secret", "SignatureDoesNotMatch"),
        ("someone-else", HARD_SECRET, "InvalidAccessKeyId"),
        (KEY, HARD_SECRET[:-1], "SignatureDoesNotMatch"),
    ],
)
def test_other_keys_are_refused(key: str, secret: str, code: str) -> None:
    with pytest.raises(S3Error) as refused:
        check(signed("GET", "http://minio:9000/omnivoip", key=key, secret=secret))
    assert (refused.value.status, refused.value.code) == (403, code)


def test_a_tampered_request_or_body_is_refused() -> None:
    request = signed("PUT", "http://minio:9000/omnivoip/a.txt", b"hello")
    request.url = "http://minio:9000/omnivoip/b.txt"
    with pytest.raises(S3Error, match="signature"):
        check(request, b"hello")
    with pytest.raises(S3Error) as mismatch:
        check(signed("PUT", "http://minio:9000/omnivoip/a.txt", b"hello"), b"other")
    assert mismatch.value.code == "XAmzContentSHA256Mismatch"


def test_unsigned_and_stale_requests_are_refused() -> None:
    with pytest.raises(S3Error) as anonymous:
        verify("GET", "/omnivoip/a.txt", [], {"host": "minio:9000"}, b"", (KEY, HARD_SECRET), REGION, dt.datetime.now(dt.UTC))
    assert anonymous.value.code == "AccessDenied"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    with pytest.raises(S3Error) as stale:
        check(signed("GET", "http://minio:9000/omnivoip"), now=later)
    assert stale.value.code == "RequestTimeTooSkewed"


@pytest.fixture
def minio(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "MINIO_ROOT_USER": KEY, "MINIO_ROOT_PASSWORD": HARD_SECRET}
    command = [
        sys.executable,
        str(HERE / "standin_minio.py"),
        "server",
        str(tmp_path),
        "--address",
        f"127.0.0.1:{port}",
        "--console-address",
        ":9001",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def s3(endpoint: str, key: str = KEY, secret: str = HARD_SECRET) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(signature_version="s3v4"),
    )


def test_boto3_stores_and_reads_objects_the_way_django_storages_does(minio: str) -> None:
    client = s3(minio)
    client.create_bucket(Bucket="omnivoip")
    client.put_object(Bucket="omnivoip", Key="media/recordings/a b+c.wav", Body=b"RIFF....", ContentType="audio/wav")
    head = client.head_object(Bucket="omnivoip", Key="media/recordings/a b+c.wav")
    assert (head["ContentLength"], head["ContentType"]) == (8, "audio/wav")
    assert client.get_object(Bucket="omnivoip", Key="media/recordings/a b+c.wav")["Body"].read() == b"RIFF...."
    assert [item["Key"] for item in client.list_objects_v2(Bucket="omnivoip", Prefix="media/")["Contents"]] == [
        "media/recordings/a b+c.wav"
    ]
    # AWS_QUERYSTRING_AUTH: the browser fetches media through presigned URLs.
    url = client.generate_presigned_url("get_object", Params={"Bucket": "omnivoip", "Key": "media/recordings/a b+c.wav"}, ExpiresIn=60)
    assert urllib.request.urlopen(url, timeout=5).read() == b"RIFF...."
    with pytest.raises(urllib.error.HTTPError) as tampered:
        urllib.request.urlopen(url.replace("Signature=", "Signature=0"), timeout=5)
    assert tampered.value.code == 403
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket="omnivoip", Key="nothing")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_boto3_with_other_keys_is_refused(minio: str) -> None:
    s3(minio).create_bucket(Bucket="omnivoip")
    for key, secret, code in [(KEY, "wrong-secret", "SignatureDoesNotMatch"), ("minioadmin", "minioadmin", "InvalidAccessKeyId")]:
        with pytest.raises(ClientError) as refused:
            s3(minio, key, secret).list_objects_v2(Bucket="omnivoip")
        assert refused.value.response["Error"]["Code"] == code
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{minio}/omnivoip", timeout=5)
    assert anonymous.value.code == 403
    assert urllib.request.urlopen(f"{minio}/minio/health/live", timeout=5).status == 200


def test_minio_refuses_to_start_with_a_short_password(tmp_path: Path) -> None:
    env = {**os.environ, "MINIO_ROOT_USER": KEY, "MINIO_ROOT_PASSWORD": "short"}
    result = subprocess.run(
        [sys.executable, str(HERE / "standin_minio.py"), "server", str(tmp_path), "--address", f"127.0.0.1:{free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0 and "Invalid credentials" in result.stderr


# --- Asterisk: AMI with panoramisk, ARI, the console ------------------------------------------------


MANAGER_CONF = """\
[general]
enabled=yes
port={port}
bindaddr=127.0.0.1

; the secret holds a semicolon, written escaped as omnigen does
[omnivoip]
secret={secret}
read=system,call
write=system,call,originate
deny=0.0.0.0/0.0.0.0
permit=127.0.0.1/32

[elsewhere]
secret=right-secret
read=system
write=system
deny=0.0.0.0/0.0.0.0
permit=192.0.2.0/24
"""


@pytest.fixture
def asterisk(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ami_port, http_port = free_port(), free_port()
    etc = tmp_path / "etc"
    etc.mkdir()
    ami_secret = "s3cr;t $#@/%'\"\\ x"
    (etc / "manager.conf").write_text(MANAGER_CONF.format(port=ami_port, secret=ami_secret.replace(";", "\\;")))
    (etc / "http.conf").write_text(f"[general]\nenabled=yes\nbindaddr=127.0.0.1\nbindport={http_port}\n")
    (etc / "ari.conf").write_text(
        "[general]\nenabled=yes\n\n[omnivoip]\ntype=user\nread_only=no\npassword_format=plain\npassword=ari pass\\;x\n"
    )
    env = {**os.environ, "ASTERISK_STANDIN_CONFIG_DIR": str(etc), "ASTERISK_STANDIN_CONTROL": str(tmp_path / "asterisk.ctl")}
    process = subprocess.Popen([sys.executable, str(HERE / "standin_asterisk.py"), "-f", "-vvv", "-c"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(ami_port, process)
        wait_for_port(http_port, process)
        yield {
            "ami_port": ami_port,
            "http_port": http_port,
            "secret": ami_secret,
            "ari_password": "ari pass;x",
            "env": env,
            "process": process,
        }
    finally:
        stop(process)


async def ami_login(port: int, username: str, secret: str, host: str = "127.0.0.1") -> tuple[bool, dict[str, str]]:
    manager = Manager(host=host, port=port, username=username, secret=secret, ping_delay=3600, loop=asyncio.get_running_loop())
    await manager.connect()
    try:
        while manager.authenticated_future is None:
            await asyncio.sleep(0.01)
        answer = await asyncio.wait_for(manager.authenticated_future, 10)
        fields = {key: str(value) for key, value in dict(answer).items()}
        if manager.authenticated:
            pong = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), 10)
            fields["Ping"] = str(pong.get("Ping"))
        return manager.authenticated, fields
    finally:
        manager.close()


def test_panoramisk_logs_in_only_with_the_secret_in_manager_conf(asterisk: dict[str, Any]) -> None:
    accepted, fields = asyncio.run(ami_login(asterisk["ami_port"], "omnivoip", asterisk["secret"]))
    assert accepted and fields["Message"] == "Authentication accepted" and fields["Ping"] == "Pong"
    for username, secret in [
        ("omnivoip", "wrong"),
        ("omnivoip", asterisk["secret"][:-1]),
        ("admin", "admin"),
        ("nobody", asterisk["secret"]),
    ]:
        accepted, fields = asyncio.run(ami_login(asterisk["ami_port"], username, secret))
        assert not accepted
        assert (fields["Response"], fields["Message"]) == ("Error", "Authentication failed")


def test_the_right_secret_from_an_address_the_acl_denies_is_refused(asterisk: dict[str, Any]) -> None:
    accepted, fields = asyncio.run(ami_login(asterisk["ami_port"], "elsewhere", "right-secret"))
    assert not accepted and fields["Message"] == "Authentication failed"


def test_actions_before_login_are_refused(asterisk: dict[str, Any]) -> None:
    with socket.create_connection(("127.0.0.1", asterisk["ami_port"]), 5) as client:
        banner = client.recv(100)
        client.sendall(b"Action: Command\r\nCommand: core show uptime\r\nActionID: 1\r\n\r\n")
        answer = client.recv(1000)
    assert banner.startswith(b"Asterisk Call Manager/")
    assert answer == b"Response: Error\r\nActionID: 1\r\nMessage: Permission denied\r\n\r\n"


def ari(port: int, user: str, password: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ari/asterisk/info")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_ari_answers_only_the_ari_conf_user(asterisk: dict[str, Any]) -> None:
    assert ari(asterisk["http_port"], "omnivoip", asterisk["ari_password"]) == 200
    assert ari(asterisk["http_port"], "omnivoip", "wrong") == 401
    assert ari(asterisk["http_port"], "admin", "admin") == 401


def console(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(HERE / "standin_asterisk.py"), "-rx", "core show uptime"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_the_health_check_tells_the_truth(asterisk: dict[str, Any]) -> None:
    up = console(asterisk["env"])
    assert up.returncode == 0 and up.stdout.startswith("System uptime:")
    stop(asterisk["process"])
    down = console(asterisk["env"])
    assert down.returncode == 1 and "Unable to connect to remote asterisk" in down.stdout


def test_a_listener_that_cannot_bind_stops_the_daemon(asterisk: dict[str, Any]) -> None:
    # A second daemon on the same configuration finds AMI's port taken.
    second = subprocess.run(
        [sys.executable, str(HERE / "standin_asterisk.py"), "-f", "-vvv", "-c"],
        env={**asterisk["env"], "ASTERISK_STANDIN_CONTROL": asterisk["env"]["ASTERISK_STANDIN_CONTROL"] + "2"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 1 and "cannot start a listener" in second.stdout


# --- Image names ------------------------------------------------------------------------------------


def test_every_input_changes_the_content_hash() -> None:
    base: dict[str, Any] = {"name": "x", "packages": ["a"], "customize": [], "config": ImageConfig(), "files": {}}
    variants: list[dict[str, Any]] = [
        {"packages": ["b"]},
        {"customize": ["true"]},
        {"config": ImageConfig(user="1")},
        {"config": ImageConfig(env={"A": "1"})},
        {"config": ImageConfig(volumes=["/data"])},
        {"files": {"/f": ImageFile(b"1")}},
        {"files": {"/f": ImageFile(b"", 0o755)}},
        {"name": "y"},
    ]
    digests = {content_hash(**base)} | {content_hash(**{**base, **variant}) for variant in variants}
    assert len(digests) == len(variants) + 1
    assert content_hash(**{**base, "packages": ["a", "a"]}) == content_hash(**base)


def test_image_config_keeps_a_path_when_docker_import_gives_none() -> None:
    changes = ImageConfig(cmd=["redis-server"], user="redis").changes()
    assert any(line.startswith("ENV PATH=") for line in changes)
    assert 'CMD ["redis-server"]' in changes and "USER redis" in changes


def test_the_stand_ins_need_only_the_standard_library() -> None:
    """The images carry Debian's python3 and nothing else."""
    python = shutil.which("python3") or sys.executable
    for module in ("standin_asterisk.py", "standin_minio.py"):
        result = subprocess.run(
            [python, "-S", "-c", f"import runpy; runpy.run_path({str(HERE / module)!r}, run_name='check')"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
