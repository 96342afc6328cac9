"""probes.py: the four host situations diagnosed from fixture trees; every probe degrades to unknown."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from omnigen.inputs.profile import Profile
from omnigen.loading import load_profile, validate_profile
from omnigen.tools.probes import (
    HOST_SIDE_FIX,
    SYSCTL_ERROR,
    CommandResult,
    Diagnosis,
    HostView,
    diagnose,
    probe_apparmor,
    probe_container,
    probe_daemon_json,
    probe_ports,
    probe_runtime,
    probe_unprivileged_port_start,
    probe_user_namespace,
    runc_reopens_procfs,
    socket_binder,
)
from tests.conftest import ROOT

FIXTURES = Path(__file__).resolve().parent.parent / "doctor_fixtures"


def fixture_view(case: str, bind: Any = None) -> HostView:
    """A HostView over tests/doctor_fixtures/<case>: its files, environment, platform and canned CLI output."""
    root = FIXTURES / case
    spec = json.loads((root / "fixture.json").read_text())
    commands: dict[str, dict[str, Any]] = spec["commands"]

    def run(argv: Sequence[str]) -> CommandResult | None:
        entry = commands.get(" ".join(argv))
        return None if entry is None else CommandResult(entry["returncode"], entry["stdout"], entry.get("stderr", ""))

    return HostView(root=root, run=run, environ=spec["environ"], system=spec["system"], bind=bind or (lambda address, port, protocol: "free"))


def _example(name: str) -> Profile:
    return load_profile(ROOT / "profiles" / f"{name}.toml", {})


def _desktop_profile() -> Profile:
    data = {"schema_version": 2, "project": {"name": "dev"}, "host": {"kind": "docker-desktop"}, "network": {"bind_ip": "127.0.0.1"}, "capacity": {"concurrent_calls": 5}}
    return validate_profile(data, file="dev.toml", text="", env={})


def _status(diagnosis: Diagnosis) -> dict[str, str]:
    return {probe.name: probe.status for probe in diagnosis.probes}


CASES = [
    # fixture, profile, suggested kind, healthy, texts that must appear in problems or notes
    pytest.param("vps", "vps-nat", "vps", True, [], id="bare-vps"),
    pytest.param("lxc-unprivileged-nested", "proxmox-lxc", "lxc-unprivileged", False, [SYSCTL_ERROR, "lxc-pve to 6.0.5-2", "Incus: 6.19", "lxc.apparmor.profile: unconfined", "Never edit docker-compose.yml"], id="lxc-unprivileged-nested-affected-runc"),
    pytest.param("rootless", "rootless", "rootless", True, [], id="rootless"),
    pytest.param("docker-desktop", None, "docker-desktop", True, ["Docker Desktop is for development"], id="docker-desktop"),
]


@pytest.mark.parametrize(("case", "profile", "kind", "healthy", "texts"), CASES)
def test_fixture_tree_is_diagnosed(case: str, profile: str | None, kind: str, healthy: bool, texts: list[str]) -> None:
    chosen = _example(profile) if profile else _desktop_profile()
    diagnosis = diagnose(fixture_view(case), chosen)
    assert diagnosis.suggested_kind == kind, diagnosis.kind_reason
    assert diagnosis.healthy is healthy, diagnosis.problems
    said = "\n".join(diagnosis.problems + diagnosis.notes)
    for text in texts:
        assert text in said
    if case != "lxc-unprivileged-nested":
        assert SYSCTL_ERROR not in said, "the host-side fix is named only when its conditions match"


def test_nested_lxc_facts_behind_the_diagnosis() -> None:
    found = {probe.name: probe for probe in diagnose(fixture_view("lxc-unprivileged-nested")).probes}
    assert found["container"].facts["container"] == "lxc"
    assert found["user namespace"].facts == {"userns": "mapped", "host_uid": "100000"}
    assert found["apparmor"].facts["confined"] == "yes" and found["apparmor"].facts["nested"] == "yes"
    assert found["runc"].facts == {"version": "1.3.3-0ubuntu1~22.04.2", "procfs_reopen": "yes"}


def test_same_lxc_with_an_older_runc_is_healthy() -> None:
    view = fixture_view("lxc-unprivileged-nested")
    assert view.run is not None
    original = view.run

    def older_runc(argv: Sequence[str]) -> CommandResult | None:
        if list(argv) == ["runc", "--version"]:
            return CommandResult(0, "runc version 1.1.12-0ubuntu3.1\nspec: 1.0.2-dev\n")
        return original(argv)

    diagnosis = diagnose(replace(view, run=older_runc), _example("proxmox-lxc"))
    assert diagnosis.healthy, diagnosis.problems


def test_lxc_without_runc_gets_the_fix_as_a_note_not_a_problem() -> None:
    view = fixture_view("lxc-unprivileged-nested")
    original = view.run
    assert original is not None
    diagnosis = diagnose(replace(view, run=lambda argv: None if argv[0] == "runc" else original(argv)))
    assert diagnosis.healthy
    assert any(HOST_SIDE_FIX in note for note in diagnosis.notes)


def test_docker_desktop_on_macos_degrades_every_linux_probe_to_unknown_with_a_reason() -> None:
    statuses = _status(diagnose(fixture_view("docker-desktop")))
    for name in ("container", "user namespace", "virtualization", "apparmor", "runc", "containerd", "unprivileged ports"):
        assert statuses[name] == "unknown", name
    found = {probe.name: probe for probe in diagnose(fixture_view("docker-desktop")).probes}
    assert "not present" in found["unprivileged ports"].summary
    assert "`runc` is not installed" in found["runc"].summary
    assert found["daemon.json"].facts["path"] == "~/.docker/daemon.json"


def test_profile_that_names_the_wrong_host_kind_is_a_problem() -> None:
    diagnosis = diagnose(fixture_view("lxc-unprivileged-nested"), _example("vps-nat"))
    assert any(problem.startswith('host.kind: the profile says "vps" but this machine looks like lxc-unprivileged') for problem in diagnosis.problems)


def test_vps_and_bare_metal_mismatch_is_only_a_note() -> None:
    diagnosis = diagnose(fixture_view("vps"), _example("lan-office"))  # lan-office says bare-metal
    assert diagnosis.healthy
    assert any('host.kind = "bare-metal"; this machine looks like vps' in note for note in diagnosis.notes)


def test_profile_declaring_no_userland_proxy_on_a_daemon_that_runs_it_is_a_problem() -> None:
    diagnosis = diagnose(fixture_view("vps"), _example("call-center-200"))  # userland_proxy = false, daemon.json leaves it on
    assert any(problem.startswith("host.userland_proxy: the profile declares false but /etc/docker/daemon.json leaves docker-proxy on") for problem in diagnosis.problems)


def test_daemon_without_proxy_and_a_profile_that_assumes_it_is_a_note(tmp_path: Path) -> None:
    view = _copy_fixture("vps", tmp_path)
    (view.root / "etc/docker/daemon.json").write_text('{"userland-proxy": false}')
    diagnosis = diagnose(view, _example("vps-nat"))
    assert diagnosis.healthy
    assert any("set it to false for the larger port budget" in note for note in diagnosis.notes)


def test_busy_ports_are_a_problem_listing_them() -> None:
    busy = {(5060, "udp"), (10010, "udp")}
    view = fixture_view("vps", bind=lambda address, port, protocol: "busy" if (port, protocol) in busy else "free")
    diagnosis = diagnose(view, _example("vps-nat"))
    assert not diagnosis.healthy
    ports = next(probe for probe in diagnosis.probes if probe.name == "profile ports")
    assert ports.status == "problem"
    assert "2 of 256 ports are in use: 0.0.0.0:5060/udp (ports.sip), 0.0.0.0:10010/udp (rtp.start)" in ports.summary


def test_ports_below_the_unprivileged_start_are_unknown_not_busy() -> None:
    view = fixture_view("vps", bind=lambda address, port, protocol: "denied" if port < 1024 else "free")
    ports = next(probe for probe in diagnose(view, _example("vps-nat")).probes if probe.name == "profile ports")
    assert ports.status == "unknown"
    assert "254 ports free; 2 could not be tried without root" in ports.summary


def test_bind_ip_that_is_not_local_is_a_problem() -> None:
    view = fixture_view("vps", bind=lambda address, port, protocol: "no-address")
    ports = next(probe for probe in diagnose(view, _example("lan-office")).probes if probe.name == "profile ports")
    assert ports.status == "problem"
    assert ports.summary.startswith("192.168.1.10 is not an address of this machine")


def test_rootless_allow_needs_the_sysctl_lowered() -> None:
    data = {
        "schema_version": 2,
        "project": {"name": "dev"},
        "host": {"kind": "rootless", "low_ports": "allow"},
        "network": {"bind_ip": "192.168.50.5"},
        "capacity": {"concurrent_calls": 5},
    }
    profile = validate_profile(data, file="dev.toml", text="", env={})
    diagnosis = diagnose(fixture_view("rootless"), profile)
    assert any("net.ipv4.ip_unprivileged_port_start is 1024, so rootless Docker cannot publish 80, 443" in problem for problem in diagnosis.problems)


# --- Degrading -----------------------------------------------------------------------------------


def _copy_fixture(case: str, tmp_path: Path) -> HostView:
    import shutil

    shutil.copytree(FIXTURES / case, tmp_path / case)
    return replace(fixture_view(case), root=tmp_path / case)


def test_a_directory_where_a_file_should_be_is_unknown_with_the_reason(tmp_path: Path) -> None:
    view = _copy_fixture("vps", tmp_path)
    (view.root / "proc/self/uid_map").unlink()
    (view.root / "proc/self/uid_map").mkdir()
    probe = probe_user_namespace(view)
    assert probe.status == "unknown" and "uid_map" in probe.summary


@pytest.mark.parametrize(
    ("relative", "content", "probe", "expected"),
    [
        ("proc/self/uid_map", "garbage\n", probe_user_namespace, "unreadable content"),
        ("proc/sys/net/ipv4/ip_unprivileged_port_start", "lots\n", probe_unprivileged_port_start, "unexpected content"),
        ("etc/docker/daemon.json", "{not json", probe_daemon_json, "is not valid JSON (line 1"),
        ("etc/docker/daemon.json", "[1, 2]", probe_daemon_json, "is not a JSON object"),
        ("etc/docker/daemon.json", '{"userland-proxy": "no"}', probe_daemon_json, "userland-proxy must be true or false"),
    ],
    ids=["uid-map", "port-start", "daemon-json-syntax", "daemon-json-array", "daemon-json-type"],
)
def test_garbage_content_is_reported_not_raised(tmp_path: Path, relative: str, content: str, probe: Any, expected: str) -> None:
    view = _copy_fixture("vps", tmp_path)
    (view.root / relative).write_text(content)
    result = probe(view)
    assert expected in result.summary
    assert result.status in {"unknown", "problem"}


def test_a_probe_that_crashes_becomes_unknown_and_the_others_still_answer() -> None:
    def exploding(argv: Sequence[str]) -> CommandResult | None:
        raise RuntimeError("runner exploded")

    diagnosis = diagnose(replace(fixture_view("vps"), run=exploding))
    statuses = _status(diagnosis)
    assert statuses["runc"] == "unknown"
    assert "the probe failed: RuntimeError: runner exploded" in next(probe.summary for probe in diagnosis.probes if probe.name == "runc")
    assert statuses["user namespace"] == "info" and statuses["daemon.json"] == "info"


def test_without_a_runner_commands_are_unknown_with_the_reason() -> None:
    probe = probe_runtime(replace(fixture_view("vps"), run=None), "runc")
    assert probe.status == "unknown"
    assert "not run when --root" in probe.summary


def test_a_cli_that_prints_no_version_is_unknown() -> None:
    view = replace(fixture_view("vps"), run=lambda argv: CommandResult(1, "", "permission denied while trying to connect"))
    probe = probe_runtime(view, "docker")
    assert probe.status == "unknown" and "permission denied" in probe.summary


def test_container_probe_reads_proc_1_environ_even_without_other_markers(tmp_path: Path) -> None:
    view = _copy_fixture("lxc-unprivileged-nested", tmp_path)
    (view.root / "run/systemd/container").unlink()
    probe = probe_container(replace(view, run=lambda argv: None))
    assert probe.facts == {"container": "lxc"} and "/proc/1/environ" in probe.summary


def test_apparmor_not_loaded(tmp_path: Path) -> None:
    view = _copy_fixture("vps", tmp_path)
    (view.root / "sys/module/apparmor/parameters/enabled").unlink()
    (view.root / "sys/module/apparmor/parameters").rmdir()
    (view.root / "sys/module/apparmor").rmdir()
    assert probe_apparmor(view).facts.get("enabled") == "no"


RUNC_VERSIONS = [
    ("1.1.12", False),
    ("1.2.7", False),
    ("1.2.8", True),
    ("1.3.2", False),
    ("1.3.3", True),
    ("1.3.3-0ubuntu1~22.04.2", True),
    ("1.4.0-rc.2", False),
    ("1.4.0-rc.3", True),
    ("1.4.0", True),
    ("1.5.1", True),
    ("2.0.0", True),
    ("v1.2.9", True),
    ("unknown", None),
]


@pytest.mark.parametrize(("version", "affected"), RUNC_VERSIONS)
def test_runc_versions_with_the_procfs_reopen(version: str, affected: bool | None) -> None:
    assert runc_reopens_procfs(version) is affected


def test_socket_binder_sees_a_real_busy_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert socket_binder("127.0.0.1", port, "udp") == "busy"
    assert socket_binder("127.0.0.1", port, "udp") == "free"
    assert socket_binder("203.0.113.77", port, "tcp") == "no-address"


def test_multi_host_ports_are_this_hosts_bundle_ports_as_the_loader_laid_them_out() -> None:
    from omnigen.loading import load

    loaded = load(ROOT / "profiles" / "multi-host-2.toml", {})
    first = str(loaded.profile.hosts[0].address)
    tried: set[str] = set()

    def first_host_only(address: str, port: int, protocol: str) -> str:
        if address not in ("0.0.0.0", first):
            return "no-address"
        if port:
            tried.add(f"{address}:{port}/{protocol}")
        return "free"

    ports = probe_ports(HostView(root=Path("/nonexistent"), run=None, bind=first_host_only), loaded.profile, loaded.layout)
    bundle = loaded.layout.hosts[0].bundle
    expected = {f"{use.host_ip}:{port}/{use.protocol}" for use in bundle.uses for port in range(use.start, use.end + 1)}
    assert ports.status == "ok" and tried == expected
    assert ports.facts["checked"] == str(len(expected))

    elsewhere = probe_ports(HostView(root=Path("/nonexistent"), run=None, bind=lambda *_: "no-address"), loaded.profile, loaded.layout)
    assert elsewhere.status == "unknown" and "run doctor on each host" in elsewhere.summary
