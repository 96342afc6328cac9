"""Multi-host builds ([[hosts]]): every output pinned by snapshots, judged by the real Docker CLI
(`docker stack config`), the real Compose (`config -q` on every bundle), yamllint, the
compose-spec schema and `sh`, and the per-host facts the plan promises."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from omnigen.formats.asteriskconf import parse_conf
from omnigen.inputs.schema import profile_schema
from omnigen.loading import load_profile
from omnigen.pipeline import Compiled
from omnigen.plan import placement
from omnigen.plan.capacity import host_port_plan
from omnigen.plan.cluster import STACK_OUTPUTS
from tests.conftest import (
    MULTI_HOST_EXAMPLES,
    ROOT,
    compile_example,
    compose_binary,
    missing_tool,
    node_tool,
    run_cli,
    snapshot_suffix,
    write_files,
)

PROFILES = {path.stem: path for path in MULTI_HOST_EXAMPLES}
# The Docker CLI of the e2e tier (tests/e2e/engine.py): `docker stack config` needs no daemon.
STACK_CONFIG_HELP = ("stack", "config", "--help")


def test_both_examples_are_here() -> None:
    assert set(PROFILES) == {"multi-host-2", "multi-host-4"}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Compiled, Path]:
    compiled = compile_example(PROFILES[request.param])
    folder = write_files(tmp_path_factory.mktemp(request.param), compiled.files)
    return compiled, folder


def _bundles(compiled: Compiled) -> list[str]:
    return [folder for folder, _ in compiled.plan.bundles]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_file_list(profile: str, snapshot_as) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_example(PROFILES[profile])
    assert snapshot_as("txt") == "\n".join(compiled.files) + "\n"


def _outputs() -> list[tuple[str, str]]:
    return [(profile, relative) for profile in sorted(PROFILES) for relative in compile_example(PROFILES[profile]).files]


@pytest.mark.parametrize(("profile", "relative"), _outputs(), ids=lambda value: value.replace("/", "_").lstrip("."))
def test_output_snapshot(profile: str, relative: str, snapshot_as) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_example(PROFILES[profile])
    assert snapshot_as(snapshot_suffix(relative)) == compiled.files[relative]


def test_outputs_are_the_stack_files_and_one_bundle_per_host(built: tuple[Compiled, Path]) -> None:
    compiled, _ = built
    cluster = compiled.plan.cluster
    assert cluster is not None
    root = [name for name in compiled.files if "/" not in name]
    assert root == [dest for _, dest in STACK_OUTPUTS]
    for host in cluster.hosts:
        wanted = {"docker-compose.yml", ".env"}
        asterisk = {f"asterisk/{name}.conf" for name in ("rtp", "pjsip", "manager", "http", "ari", "extensions", "queues")}
        wanted |= asterisk if "voice" in host.roles else set()
        wanted |= {"nginx/nginx.conf"} if "edge" in host.roles else set()
        wanted |= {"backend/startup.sh", "backend/omnigen_settings.py"} if "web" in host.roles else set()
        wanted |= set(host.plan.secret_env)  # secrets/<service>.env of the services this host runs
        assert {name.removeprefix(f"hosts/{host.name}/") for name in compiled.files if name.startswith(f"hosts/{host.name}/")} == wanted
        assert host.plan.services is not None
        assert {path.removeprefix("secrets/").removesuffix(".env") for path in host.plan.secret_env} <= set(host.plan.services)
    edge = next(host.name for host in cluster.hosts if "edge" in host.roles)
    # nginx's private key: beside stack.yml (its Swarm secret) and in the edge host's bundle.
    secret_env_files = {f"hosts/{host.name}/{path}" for host in cluster.hosts for path in host.plan.secret_env}
    private = {f"hosts/{host.name}/asterisk/{name}.conf" for host in cluster.hosts if "voice" in host.roles for name in ("manager", "ari")}
    assert compiled.plan.secret_files == {
        ".env",
        *(f"hosts/{host.name}/.env" for host in cluster.hosts),
        *secret_env_files,
        *private,
        "certs/privkey.pem",
        f"hosts/{edge}/certs/privkey.pem",
    }


def _exported_env(folder: Path) -> dict[str, str]:
    """The environment deploy-stack.sh gives `docker stack deploy`: the .env sourced by sh."""
    script = f'set -a; . "{folder / ".env"}"; set +a; exec "{sys.executable}" -c "import json, os; print(json.dumps(dict(os.environ)))"'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    exported: dict[str, str] = json.loads(result.stdout)
    return exported


def _docker_cli() -> str:
    """A docker CLI with `stack config` (Docker 20.10's, Debian bookworm's, has none)."""
    client = shutil.which("docker")
    if client is None or subprocess.run([client, *STACK_CONFIG_HELP], capture_output=True, check=False).returncode != 0:
        missing_tool("`docker stack config` needs Docker CLI 23 or later on PATH (.ci/install-docker.sh installs it)")
    return client


def _stack_config(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # No daemon: the socket points nowhere, so the check is the CLI's own loader and schema.
    clean = {key: value for key, value in env.items() if not key.startswith(("DOCKER_", "COMPOSE_"))}
    clean["DOCKER_HOST"] = f"unix://{folder}/no-daemon.sock"
    clean["DOCKER_CONFIG"] = str(folder / ".docker-client")
    return subprocess.run([_docker_cli(), "stack", "config", "--compose-file", str(folder / "stack.yml")], capture_output=True, text=True, env=clean, cwd=folder, check=False)


def test_docker_stack_config_accepts_the_stack_with_its_env_and_refuses_it_without(built: tuple[Compiled, Path]) -> None:
    compiled, folder = built
    env = _exported_env(folder)
    result = _stack_config(folder, env)
    assert result.returncode == 0, result.stderr
    normalised: dict[str, Any] = yaml.safe_load(result.stdout)
    cluster = compiled.plan.cluster
    assert cluster is not None
    assert sorted(normalised["services"]) == sorted(service.name for service in cluster.services)
    for service in cluster.services:
        ports = normalised["services"][service.name].get("ports", [])
        assert [(port["target"], int(port["published"]), port["protocol"], port["mode"]) for port in ports] == [
            (port.target, port.published, port.protocol, "host") for port in service.ports
        ]
        assert normalised["services"][service.name]["deploy"]["placement"]["constraints"] == list(service.constraints)
    django = normalised["services"]["django-app"]["environment"]
    assert django["CELERY_BROKER_URL"] == compiled.plan.env_map["CELERY_BROKER_URL"]
    # Over the overlay, the backend reaches the first voice host's Asterisk by its stack service name.
    assert django["ASTERISK_AMI_HOST"] == cluster.voice[0].service
    # Without the exported .env, every ${VAR:?} stops the deploy instead of deploying blank passwords.
    bare = _stack_config(folder, {"PATH": os.environ["PATH"]})
    assert bare.returncode != 0 and "required variable" in bare.stderr, bare.stderr


def test_the_real_compose_accepts_every_bundle(built: tuple[Compiled, Path]) -> None:
    compiled, folder = built
    for bundle in _bundles(compiled):
        path = folder / bundle
        result = subprocess.run(
            [str(compose_binary()), "--project-directory", str(path), "-f", str(path / "docker-compose.yml"), "--env-file", str(path / ".env"), "config", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{bundle}: {result.stderr}"


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_yamllint_and_the_compose_spec_schema_accept_every_yaml_output(built: tuple[Compiled, Path]) -> None:
    compiled, folder = built
    files = [str(folder / "stack.yml")] + [str(folder / bundle / "docker-compose.yml") for bundle in _bundles(compiled)]
    lint = subprocess.run([_tool("yamllint"), "--strict", "-d", "default", *files], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    schema = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files], capture_output=True, text=True, check=False)
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_the_scripts_are_posix_sh(built: tuple[Compiled, Path]) -> None:
    _, folder = built
    for script in ("label-nodes.sh", "deploy-stack.sh"):
        result = subprocess.run(["sh", "-n", str(folder / script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{script}: {result.stderr}"
        assert (folder / script).read_text().startswith("#!/bin/sh\n")


def test_label_nodes_refuses_an_unknown_host_before_touching_docker(built: tuple[Compiled, Path]) -> None:
    _, folder = built
    # PATH without docker: the argument check comes first, so no docker call is attempted.
    result = subprocess.run(["sh", str(folder / "label-nodes.sh"), "nohost=node1"], capture_output=True, text=True, env={"PATH": "/bin:/usr/bin"}, check=False)
    assert result.returncode == 2
    assert "nohost=node1: expected HOST=NODE with HOST one of:" in result.stderr


def test_deploy_stack_stops_without_the_certificate(built: tuple[Compiled, Path], tmp_path: Path) -> None:
    _, folder = built
    copy = tmp_path / "out"
    shutil.copytree(folder, copy)
    result = subprocess.run(["sh", str(copy / "deploy-stack.sh")], capture_output=True, text=True, env={"PATH": "/bin:/usr/bin"}, check=False)
    assert result.returncode == 1
    assert "./certs/fullchain.pem is missing" in result.stderr


def test_web_hosts_reach_the_data_host_and_the_first_voice_hosts_ami_at_their_addresses(built: tuple[Compiled, Path]) -> None:
    compiled, _ = built
    cluster = compiled.plan.cluster
    assert cluster is not None
    data = next(host for host in cluster.hosts if "data" in host.roles)
    first_voice = next(host for host in cluster.hosts if "voice" in host.roles)
    for host in cluster.hosts:
        env = host.plan.env_map
        if "web" in host.roles and "data" not in host.roles:
            assert (env["POSTGRES_HOSTNAME"], env["POSTGRES_PORT"]) == (data.address, "5432")
        if "web" in host.roles and "voice" not in host.roles:
            assert (env["ASTERISK_AMI_HOST"], env["ASTERISK_AMI_PORT"]) == (first_voice.address, "5038")
            assert (env["ASTERISK_ARI_HOST"], env["ASTERISK_ARI_PORT"]) == (first_voice.address, "8088")
        if "voice" in host.roles and "data" not in host.roles:
            # Asterisk reads no database; least secrets: a voice host holds no database, web or storage credential.
            assert not {"POSTGRES_PASSWORD", "DJANGO_SECRET_KEY", "MINIO_ROOT_PASSWORD", "REDIS_PASSWORD"} & set(env)
            rtp = next(voice for voice in cluster.voice if voice.host == host.name).rtp
            assert (env["ACD_RTP_PORT_MIN"], env["ACD_RTP_PORT_MAX"], env["EXTERNAL_IP"]) == (str(rtp.start), str(rtp.end), host.advertised_ip)
    published = {(port.service, port.host_ip, port.host_start, port.container_start) for port in data.plan.all_published}
    if any("web" in host.roles for host in cluster.hosts if host is not data):
        assert ("postgresql", data.address, 5432, 5432) in published
    assert all(host_ip == data.address for service, host_ip, _, _ in published if service in placement.PEER_PORTS)
    # AMI and ARI on the first voice host's private address only, for the web host's clients.
    voice_published = {(port.host_ip, port.container_start) for port in first_voice.plan.all_published if port.host_start in (5038, 8088)}
    assert voice_published == {(first_voice.address, 5038), (first_voice.address, 8088)}
    manager = parse_conf(compiled.files[f"hosts/{first_voice.name}/asterisk/manager.conf"])
    web = next(host for host in cluster.hosts if "web" in host.roles)
    assert f"{web.address}/32" in {setting.value for setting in manager.section("omnivoip").get_all("permit")}  # type: ignore[union-attr]


def test_the_stack_env_holds_only_what_stack_yml_reads_and_no_per_host_value(built: tuple[Compiled, Path]) -> None:
    compiled, _ = built
    keys = set(compiled.plan.env_map)
    assert not keys & set(placement.PER_VOICE_HOST_ENV_KEYS)
    assert "DIALER_DATABASE_URL" not in keys  # written by single-host builds, read by no service


def test_build_writes_private_env_files_and_check_finds_it_up_to_date(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "multi-host-4.toml").read_text())
    out = tmp_path / "out"
    result = run_cli("build", str(profile), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "4 hosts (stack.yml, hosts/<name>/); voice1 200 calls, RTP 20000-21007; voice2 200 calls, RTP 22000-23007" in result.stdout
    modes = {path.relative_to(out).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*") if path.is_file()}
    private = {".env", ".omnigen-manifest.json", *(f"hosts/{h}/.env" for h in ("data1", "app1", "voice1", "voice2"))}
    private |= {name for name in modes if "/secrets/" in name} | {"certs/privkey.pem", "hosts/app1/certs/privkey.pem"}
    private |= {f"hosts/{h}/asterisk/{name}.conf" for h in ("voice1", "voice2") for name in ("manager", "ari")}
    assert {name for name, mode in modes.items() if mode == 0o600} == private
    assert {name for name in modes if "/secrets/" in name}, "each host's services get their secrets from secrets/<service>.env"
    check = run_cli("check", str(profile), "-o", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    lint = run_cli("lint", str(out / "stack.yml"))
    assert lint.returncode == 0 and "0 errors, 0 warnings" in lint.stdout, lint.stdout


def test_explain_shows_placement_and_each_hosts_port_cost(capsys: pytest.CaptureFixture[str]) -> None:
    from omnigen.cli import main

    path = PROFILES["multi-host-4"]
    assert main(["explain", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    profile = load_profile(path, {})
    by_host = {row["host"]: row for row in data["placement"]}
    assert list(by_host) == ["data1", "app1", "voice1", "voice2"]
    for index, host in enumerate(profile.hosts):
        layouts = host_port_plan(profile, index)
        row = by_host[host.name]
        assert row["roles"] == list(host.roles) and row["calls"] == host.calls
        assert row["cost"]["bundle"]["published"] == layouts.bundle.published
        assert row["cost"]["stack"]["published"] == layouts.stack.published
        assert row["cost"]["within_budget"]
    assert by_host["data1"]["published_for_peers"] == ["postgresql", "redis", "minio"]
    assert by_host["voice1"]["published_for_peers"] == ["asterisk-ami", "asterisk-http"]
    assert [(row["host"], row["start"], row["end"]) for row in data["media"]] == [("voice1", 20000, 21007), ("voice2", 22000, 23007)]
    assert main(["explain", str(path)]) == 0
    text = capsys.readouterr().out
    assert "Placement" in text and "Estimated publishing cost per host" in text and "omnivoip.host.voice2" in text


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_examples_validate_against_the_schema_editors_use(profile: str) -> None:
    text = PROFILES[profile].read_text()
    assert text.splitlines()[0] == "#:schema ../schema/omnivoip.schema.json"
    jsonschema.validate(tomllib.loads(text), profile_schema())
    taplo = node_tool("taplo")
    result = subprocess.run([str(taplo), "check", str(PROFILES[profile])], capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_hosts_kind_brings_its_own_warnings(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "multi-host-2.toml").read_text().replace('name = "voice1"\n', 'name = "voice1"\nkind = "lxc-unprivileged"\n'))
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert warnings and all("warning: hosts.1.kind: voice1" in line for line in warnings), warnings
    assert any("vxlan kernel module" in line for line in warnings)
    assert any("open sysctl net.ipv4.ip_unprivileged_port_start" in line for line in warnings)
    plain = tmp_path / "plain.toml"  # a copy: a build writes the secrets sidecar beside its profile
    plain.write_text(PROFILES["multi-host-2"].read_text())
    assert "warning" not in run_cli("build", str(plain), "-o", str(tmp_path / "plain")).stderr


def _placements() -> list[tuple[int, int, tuple[int, ...]]]:
    """Every placement of 3 hosts: data on one, web + edge on one, voice on any non-empty subset."""
    subsets = [tuple(index for index in range(3) if mask >> index & 1) for mask in range(1, 8)]
    return [(data, web, voice) for data in range(3) for web in range(3) for voice in subsets]


def test_every_placement_of_three_hosts_builds_and_verifies(tmp_path: Path) -> None:
    """Whatever shares a host, the verify stage (rules, cross-host resolution, ranges, labels) passes."""
    from omnigen.inputs.profile import Secrets
    from omnigen.pipeline import compile_profile
    from tests.conftest import fake_token

    built = 0
    for data, web, voice in _placements():
        text = "schema_version = 2\n[project]\nname = \"mix\"\n[host]\nkind = \"bare-metal\"\nuserland_proxy = false\n"
        text += f"[capacity]\nconcurrent_calls = {10 * len(voice)}\n"
        for index in range(3):
            roles = (["data"] if index == data else []) + (["web", "edge"] if index == web else []) + (["voice"] if index in voice else [])
            if not roles:
                continue
            text += f'\n[[hosts]]\nname = "h{index}"\naddress = "10.10.0.{11 + index}"\npublic_ip = "203.0.113.{11 + index}"\nroles = {json.dumps(roles)}\n'
            text += "calls = 10\n" if index in voice else ""
        path = tmp_path / f"mix-{data}-{web}-{''.join(map(str, voice))}.toml"
        path.write_text(text)
        compiled = compile_profile(load_profile(path, {}), Secrets(), fake_token)
        cluster = compiled.plan.cluster
        assert cluster is not None
        assert {voice_host.host for voice_host in cluster.voice} == {f"h{index}" for index in voice}
        built += 1
    assert built == len(_placements()) == 63


def test_a_web_port_other_than_443_is_an_origin_not_an_address_to_verify() -> None:
    # CORS_ALLOWED_ORIGINS carries https://HOST:PORT for browsers; no service connects there.
    compiled = compile_example(PROFILES["multi-host-2"], environ={"OMNIGEN_PORTS__HTTPS": "28443"})
    assert compiled.plan.env_map["CORS_ALLOWED_ORIGINS"].endswith(":28443")
