"""The real Docker Compose v2 binary judges every example's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnigen.formats.asteriskconf import parse_conf
from omnigen.pipeline import Compiled
from tests.conftest import EXAMPLES, compile_example, compose_json, run_compose, write_files

FORBIDDEN_KEYS = ("privileged", "sysctls", "userns_mode", "network_mode", "pid", "ipc", "uts", "devices", "cgroup")


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.stem)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Compiled, Path, dict[str, Any]]:
    compiled = compile_example(request.param)
    folder = write_files(tmp_path_factory.mktemp(request.param.stem), compiled.files)
    quiet = run_compose(folder, "config", "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", f"compose warned: {quiet.stderr}"
    return compiled, folder, compose_json(folder)


def _published(service: dict[str, Any]) -> list[dict[str, Any]]:
    return list(service.get("ports", []))


def test_rtp_range_agrees_across_compose_rtpconf_and_env(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    compiled, folder, normalised = built
    asterisk = normalised["services"]["asterisk"]
    udp_ranges = sorted(int(port["target"]) for port in _published(asterisk) if port["protocol"] == "udp" and int(port["target"]) != compiled.plan.sip_port)
    rtp = parse_conf((folder / "asterisk/rtp.conf").read_text()).section("general")
    assert rtp is not None
    start, end = int(rtp.get("rtpstart").value), int(rtp.get("rtpend").value)  # type: ignore[union-attr]
    # In a LAN mode (ipvlan/macvlan) Asterisk has its own address: nothing of it is published.
    assert udp_ranges == ([] if compiled.plan.network.lan else list(range(start, end + 1)))
    assert start % 2 == 0 and end % 2 == 1
    assert end - start + 1 >= 4 * compiled.plan.rtp.calls
    environment = asterisk["environment"]
    assert (int(environment["ACD_RTP_PORT_MIN"]), int(environment["ACD_RTP_PORT_MAX"])) == (start, end)


def test_published_ports_bind_explicit_addresses_and_keep_numbers(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    _compiled, _, normalised = built
    for name, service in normalised["services"].items():
        for port in _published(service):
            assert port.get("host_ip"), f"{name} publishes {port} on every interface"
            if port["protocol"] == "udp":
                assert str(port["published"]) == str(port["target"]), f"{name}: UDP host port must equal container port"
    internal = {"postgresql", "redis", "minio"}
    for name in internal:
        for port in _published(normalised["services"][name]):
            assert port["host_ip"] == "127.0.0.1"


def test_no_forbidden_settings(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    _compiled, _, normalised = built
    for name, service in normalised["services"].items():
        present = [key for key in FORBIDDEN_KEYS if service.get(key)]
        assert not present, f"{name} carries {present}"
        assert service.get("cap_drop") == ["ALL"]
        # Only the frontend's root master gets anything back (docs/application.md; rule OV102).
        assert service.get("cap_add", []) == list(_compiled.plan.cap_add.get(name, ())), name
        assert "no-new-privileges:true" in service.get("security_opt", [])
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert not volume["source"].endswith("docker.sock")
                # The one writable bind: the ACME client's own state folder (tls.mode = "acme", docs/tls.md).
                writable_by_design = name == "acme" and volume["target"] == "/var/lib/acme"
                assert volume.get("read_only") is True or writable_by_design, f"{name} bind-mounts {volume['source']} writable"


def test_services_receive_exactly_the_planned_values(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    compiled, _, normalised = built
    env = compiled.plan.env_map
    django = normalised["services"]["django-app"]["environment"]
    assert django["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert django["CELERY_BROKER_URL"] == env["CELERY_BROKER_URL"]
    assert normalised["services"]["postgresql"]["environment"]["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    # The AMI secret each client is given is the one manager.conf holds for its user (rule OV216 checks the files).
    dialer = normalised["services"]["dialer-api"]["environment"]
    assert (dialer["ASTERISK_AMI_USER"], dialer["ASTERISK_AMI_SECRET"]) == (env["DIALER_AMI_USER"], env["DIALER_AMI_SECRET"])
    assert (django["ASTERISK_AMI_USER"], django["ASTERISK_AMI_SECRET"]) == (env["ASTERISK_AMI_USER"], env["ASTERISK_AMI_SECRET"])
    assert dialer["REDIS_URL"] == normalised["services"]["dialer-worker"]["environment"]["REDIS_URL"] == env["DIALER_REDIS_URL"]


def test_asterisk_configs_are_mounted_where_asterisk_reads_them(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    _, folder, normalised = built
    targets = {volume["target"]: volume for volume in normalised["services"]["asterisk"]["volumes"] if volume["type"] == "bind"}
    for name in ("rtp.conf", "pjsip.conf", "manager.conf", "http.conf", "ari.conf", "extensions.conf", "queues.conf"):
        volume = targets[f"/etc/asterisk/{name}"]
        assert Path(volume["source"]) == folder / "asterisk" / name
        assert volume["read_only"] is True


def test_network_uses_profile_subnet_and_local_net_covers_it(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    compiled, folder, normalised = built
    network = normalised["networks"][compiled.plan.network.name]
    assert network["ipam"]["config"][0]["subnet"] == compiled.plan.network.subnet
    lan = compiled.plan.network.lan
    assert set(normalised["networks"]) == {compiled.plan.network.name} | ({lan.name} if lan else set())
    pjsip = parse_conf((folder / "asterisk/pjsip.conf").read_text())
    for transport in ("transport-udp", "transport-tcp"):
        section = pjsip.section(transport)
        assert section is not None
        assert compiled.plan.network.subnet in [s.value for s in section.get_all("local_net")]
        assert section.get("external_media_address").value == compiled.plan.network.advertised_ip  # type: ignore[union-attr]


def test_every_dependency_exists_and_waits_for_health(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    _, _, normalised = built
    services = normalised["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services
            assert condition["condition"] == "service_healthy"


def test_the_operators_shell_cannot_change_a_secret(built: tuple[Compiled, Path, dict[str, Any]]) -> None:
    """Every .env key exported in the shell with another value: Compose takes exported variables over
    .env for `${...}`, so no service may receive a secret that way (docs/safe-output.md)."""
    import json
    import os
    import subprocess
    from urllib.parse import quote

    from tests.conftest import _unescape_dollars, compose_binary

    compiled, folder, _ = built
    shell = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    shell |= {key: "exported-in-the-shell" for key in compiled.plan.env_map}
    result = subprocess.run(
        [str(compose_binary()), "--project-directory", str(folder), "-f", str(folder / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=shell,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = _unescape_dollars(json.loads(result.stdout))["services"]
    planned = compiled.plan.env_map
    assert services["postgresql"]["environment"]["POSTGRES_PASSWORD"] == planned["POSTGRES_PASSWORD"]
    assert services["django-app"]["environment"]["POSTGRES_PASSWORD"] == planned["POSTGRES_PASSWORD"]
    assert services["django-app"]["environment"]["ASTERISK_AMI_SECRET"] == planned["ASTERISK_AMI_SECRET"]
    assert services["dialer-api"]["environment"]["ASTERISK_AMI_SECRET"] == planned["DIALER_AMI_SECRET"]
    received = 0
    for path, variables in compiled.plan.secret_env.items():
        service = path.removeprefix("secrets/").removesuffix(".env")
        for var in variables:
            assert services[service]["environment"][var.key] == var.value, (service, var.key)
            received += 1
    assert received >= 10
    # ...so Redis and every URL agree on the password, whatever the shell says.
    redis_password = quote(services["redis"]["environment"]["REDIS_PASSWORD"], safe="")
    for service, url in (("django-app", "CELERY_BROKER_URL"), ("dialer-api", "REDIS_URL"), ("websockets", "REDIS_URL")):
        assert f":{redis_password}@" in services[service]["environment"][url], (service, url)
