"""`omnigen import` end to end: the reference v2 deployment -> profile -> build -> lint clean."""

from __future__ import annotations

import json
import shutil
import stat
import tomllib
from pathlib import Path

from omnigen.cli import COMMANDS
from omnigen.loading import load_profile
from tests.conftest import ROOT, run_cli, run_compose

REFERENCE = ROOT / "tests" / "reference" / "omnivoip-v2"


def lint_clean(out: Path) -> None:
    """The shared rule set, through `omnigen lint` when it exists, else directly."""
    if "lint" in COMMANDS:
        result = run_cli("lint", "--strict", "--format", "json", str(out))
        assert result.returncode == 0, result.stdout + result.stderr
        findings = json.loads(result.stdout)
        assert not (findings.get("findings") if isinstance(findings, dict) else findings), findings
        return
    import os

    from omnigen.tools.lint import list_dir, read_text
    from omnigen.verify.deployment import load_deployment
    from omnigen.verify.rules import run_rules

    deployment = load_deployment(str(out / "docker-compose.yml"), read_text, list_dir, display=lambda path: os.path.relpath(path, out))
    assert run_rules(deployment).findings == []


def test_reference_deployment_round_trip(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    imported = run_cli("import", str(REFERENCE), "-o", str(profile), "--public-ip", "203.0.113.10")
    assert imported.returncode == 0, imported.stderr
    sidecar = tmp_path / "site.secrets.toml"
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    assert "capacity.concurrent_calls: 25:" in imported.stdout
    assert "service dialer-postgresql: no dialer component opens a database" in imported.stdout
    for secret in tomllib.loads(sidecar.read_text()).values():
        assert secret not in imported.stdout + imported.stderr

    out = tmp_path / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, built.stderr
    assert "generated secrets" not in built.stdout + built.stderr, "import wrote every secret; build must not make new ones"
    lint_clean(out)

    # The real Compose reads it, and the values that survived the import are there.
    config = run_compose(out, "config", "--format", "json")
    assert config.returncode == 0, config.stderr
    services = json.loads(config.stdout)["services"]
    assert services["asterisk"]["environment"]["TZ"] == "America/Argentina/Cordoba"
    assert services["asterisk"]["environment"]["ACD_RTP_PORT_MIN"] == "10000"
    assert services["asterisk"]["environment"]["ACD_RTP_PORT_MAX"] == "10099"
    assert services["dialer-api"]["environment"]["ASTERISK_AMI_USER"] == "dialer"
    assert "dialer-postgresql" not in services and "gearman" not in services
    # Compose expands the range one port per entry: exactly 10000-10099, host port == container port.
    rtp = [port for port in services["asterisk"]["ports"] if port["protocol"] == "udp" and port["target"] != 5060]
    assert [port["target"] for port in rtp] == list(range(10000, 10100))
    assert all(port["published"] == str(port["target"]) for port in rtp)
    assert not any(port.get("target") in (5432, 6379, 9000, 9001, 4730, 5038) for svc in services.values() for port in svc.get("ports", []))
    assert load_profile(profile, {}).capacity.concurrent_calls == 25


def test_compose_file_as_argument_and_rebuild_is_stable(tmp_path: Path) -> None:
    profile = tmp_path / "omnivoip.toml"
    result = run_cli("import", str(REFERENCE / "prod-env" / "docker-compose.yml"), "-o", str(profile), "--bind-ip", "192.168.1.10")
    assert result.returncode == 0, result.stderr
    assert load_profile(profile, {}).network.public_ip is None
    assert str(load_profile(profile, {}).network.bind_ip) == "192.168.1.10"


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    profile = tmp_path / "omnivoip.toml"
    sidecar = tmp_path / "omnivoip.secrets.toml"
    sidecar.write_text('postgres_password = "keep-me-0123456789abcdef"\n')
    result = run_cli("import", str(REFERENCE), "-o", str(profile), "--public-ip", "203.0.113.10")
    assert result.returncode == 2
    assert "already exist" in result.stderr and "Traceback" not in result.stderr
    assert not profile.exists() and "keep-me" in sidecar.read_text()
    forced = run_cli("import", str(REFERENCE), "-o", str(profile), "--public-ip", "203.0.113.10", "--force")
    assert forced.returncode == 0, forced.stderr
    assert profile.is_file()


def test_force_keeps_a_backup_of_the_sidecar_and_the_profile(tmp_path: Path) -> None:
    """Like `build --force`: the replaced files are kept as .bak, then .bak.2; never overwritten."""
    profile = tmp_path / "omnivoip.toml"
    sidecar = tmp_path / "omnivoip.secrets.toml"
    profile.write_text("# my profile\n")
    sidecar.write_text('postgres_password = "live-password-0123456789"\n')
    sidecar.chmod(0o600)
    args = ("import", str(REFERENCE), "-o", str(profile), "--public-ip", "203.0.113.10", "--force")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    backup = tmp_path / "omnivoip.secrets.toml.bak"
    assert backup.read_text() == 'postgres_password = "live-password-0123456789"\n'
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert (tmp_path / "omnivoip.toml.bak").read_text() == "# my profile\n"
    assert f"kept the previous {sidecar} as {backup}" in first.stdout
    sidecar.write_text('postgres_password = "second-live-password-0123"\n')
    assert run_cli(*args).returncode == 0
    assert backup.read_text() == 'postgres_password = "live-password-0123456789"\n'
    assert "second-live-password" in (tmp_path / "omnivoip.secrets.toml.bak.2").read_text()
    assert not (tmp_path / "omnivoip.toml.bak.2").exists(), "an unchanged profile needs no second backup"


def test_missing_facts_exit_2_and_write_nothing(tmp_path: Path) -> None:
    profile = tmp_path / "omnivoip.toml"
    result = run_cli("import", str(REFERENCE), "-o", str(profile))
    assert result.returncode == 2
    assert "--public-ip" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_folder_without_compose_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("import", str(tmp_path / "empty"), "-o", str(tmp_path / "p.toml"))
    assert result.returncode == 2
    assert "no compose file here or one folder down" in result.stderr


def test_several_deployments_below_need_a_choice(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(REFERENCE, site)
    shutil.copytree(site / "prod-env", site / "dev-env")
    result = run_cli("import", str(site), "-o", str(tmp_path / "p.toml"), "--public-ip", "203.0.113.10")
    assert result.returncode == 2
    assert "several deployments (dev-env, prod-env)" in result.stderr
    chosen = run_cli("import", str(site / "prod-env"), "-o", str(tmp_path / "p.toml"), "--public-ip", "203.0.113.10")
    assert chosen.returncode == 0, chosen.stderr


def test_bad_options_are_refused_before_reading(tmp_path: Path) -> None:
    copy = tmp_path / "v2"
    shutil.copytree(REFERENCE, copy)
    result = run_cli("import", str(copy), "-o", str(tmp_path / "p.toml"), "--public-ip", "203.0.113.10", "--host-kind", "k8s")
    assert result.returncode == 2
    assert "--host-kind: host.kind: Input should be 'vps'" in result.stderr and "(got 'k8s')" in result.stderr
    result = run_cli("import", str(copy), "-o", str(tmp_path / "p.toml"), "--public-ip", "203.0.113.300", "--calls", "0")
    assert result.returncode == 2
    assert "--public-ip: network.public_ip: Input is not a valid IPv4 address" in result.stderr
    assert "--calls: capacity.concurrent_calls: Input should be greater than or equal to 1" in result.stderr
    assert not (tmp_path / "p.toml").exists()
