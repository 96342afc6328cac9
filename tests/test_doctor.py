"""omnigen doctor on the command line: exit codes, --root, JSON, real port binding."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.conftest import ROOT, compile_example, run_cli

FIXTURES = Path(__file__).resolve().parent / "doctor_fixtures"


def test_root_fixture_is_read_and_commands_are_not_run_against_another_root() -> None:
    result = run_cli("doctor", "--root", str(FIXTURES / "lxc-unprivileged-nested"), "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["suggested_host_kind"] == "lxc-unprivileged"
    runc = next(probe for probe in data["probes"] if probe["name"] == "runc")
    assert runc["status"] == "unknown" and "--root" in runc["summary"]
    # runc unknown under nested AppArmor: the host-side fix is offered as a note, not claimed as a problem.
    assert any("lxc-pve to 6.0.5-2" in note for note in data["notes"])


def test_profile_that_does_not_match_the_machine_exits_1() -> None:
    result = run_cli("doctor", str(ROOT / "profiles" / "vps-nat.toml"), "--root", str(FIXTURES / "lxc-unprivileged-nested"))
    assert result.returncode == 1
    assert 'PROBLEM: host.kind: the profile says "vps" but this machine looks like lxc-unprivileged' in result.stdout
    assert result.stdout.rstrip().endswith("problem(s) found")


def test_busy_profile_port_exits_1(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        start = 40000 if port < 40000 or port > 41000 else 42000
        profile = tmp_path / "site.toml"
        profile.write_text(
            'schema_version = 2\n[project]\nname = "site"\n[host]\nkind = "bare-metal"\n'
            '[network]\nbind_ip = "127.0.0.1"\n[capacity]\nconcurrent_calls = 2\n'
            f"[rtp]\nstart = {start}\n[ports]\nsip = {port}\nhttp = 18080\nhttps = 18443\n"
        )
        result = run_cli("doctor", str(profile), "--root", str(FIXTURES / "vps"))
    assert result.returncode == 1, result.stdout
    assert f"127.0.0.1:{port}/udp (ports.sip)" in result.stdout


def test_invalid_profile_exits_2_without_probing(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text('schema_version = 2\n[project]\nname = "Bad Name"\n[capacity]\nconcurrent_calls = 1\n')
    result = run_cli("doctor", str(profile))
    assert result.returncode == 2
    assert "project.name" in result.stderr and result.stdout == ""


def test_root_that_is_not_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("doctor", "--root", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "--root:" in result.stderr and "Traceback" not in result.stderr


def test_this_machine_is_probed_without_a_traceback() -> None:
    """Whatever this machine is, doctor answers every probe (possibly unknown) and exits 0 or 1."""
    result = run_cli("doctor", "--format", "json")
    assert result.returncode in {0, 1}, result.stderr
    data = json.loads(result.stdout)
    names = [probe["name"] for probe in data["probes"]]
    assert names[:4] == ["container", "user namespace", "virtualization", "apparmor"]
    assert all(probe["status"] in {"ok", "info", "unknown", "problem"} and probe["summary"] for probe in data["probes"])


def test_exported_variables_that_compose_would_take_over_the_env_file_are_a_problem() -> None:
    """Compose fills ${VAR} from the shell first: doctor names what this shell would change."""
    profile = str(ROOT / "profiles" / "vps-nat.toml")
    shell = {"TZ": "Mars/Olympus_Mons", "ACD_SIP_PORT": "5999", "POSTGRES_PASSWORD": "x"}
    result = run_cli("doctor", profile, "--root", str(FIXTURES / "vps"), "--format", "json", env=shell)
    data = json.loads(result.stdout)
    probe = next(probe for probe in data["probes"] if probe["name"] == "shell environment")
    assert probe["status"] == "problem"
    # Secrets come from secrets/<service>.env, which the shell cannot override: not named.
    assert probe["facts"]["overridden"] == "ACD_SIP_PORT,TZ"
    assert result.returncode == 1
    same = run_cli("doctor", profile, "--root", str(FIXTURES / "vps"), "--format", "json", env={"TZ": compile_example(ROOT / "profiles" / "vps-nat.toml").plan.env_map["TZ"]})
    probe = next(probe for probe in json.loads(same.stdout)["probes"] if probe["name"] == "shell environment")
    assert "TZ" not in probe["facts"].get("overridden", "").split(","), "the same value changes nothing"
