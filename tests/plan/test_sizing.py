"""Sizing to the machine: limits capped to host.cpus / host.memory, reservations that must fit, doctor's comparison."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigen.errors import ProfileError
from omnigen.inputs.profile import Profile, Secrets
from omnigen.loading import validate_profile
from omnigen.plan import sizing
from omnigen.tools.probes import CommandResult, HostView, diagnose, probe_machine_size
from tests.conftest import ROOT, fake_token, run_cli

BASE: dict[str, Any] = {
    "schema_version": 2,
    "project": {"name": "acme"},
    "network": {"bind_ip": "192.168.1.10"},
    "capacity": {"concurrent_calls": 10},
}


def _profile(**host: Any) -> Profile:
    data = copy.deepcopy(BASE)
    data["host"] = host
    return validate_profile(data, file="acme.toml", text="", env={})


def _compose(profile: Profile) -> dict[str, Any]:
    from omnigen.pipeline import compile_profile

    compiled = compile_profile(profile, Secrets(), fake_token)
    loaded: dict[str, Any] = yaml.safe_load(compiled.files["docker-compose.yml"])
    return loaded


@pytest.mark.parametrize(("text", "mib"), [("2G", 2048), ("2GiB", 2048), ("2GB", 2048), ("1536M", 1536), ("512MiB", 512), ("700MB", 700)])
def test_memory_sizes_read_as_docker_reads_them(text: str, mib: int) -> None:
    assert sizing.memory_mib(text) == mib


def test_a_one_cpu_host_gets_no_cpus_limit_above_one() -> None:
    """Main wrote cpus "2.0" for asterisk, postgresql and django-app whatever the host: a 1-CPU dockerd refuses it."""
    services = _compose(_profile(cpus=1))["services"]
    for name, service in services.items():
        resources = service["deploy"]["resources"]
        assert float(resources["limits"]["cpus"]) <= 1, name
        assert float(resources["reservations"]["cpus"]) <= float(resources["limits"]["cpus"]), name
        assert int(resources["reservations"]["memory"].removesuffix("M")) <= int(resources["limits"]["memory"].removesuffix("M")), name


def test_defaults_follow_the_host_kind() -> None:
    from omnigen.catalog import hostkinds

    for kind, facts in hostkinds.HOST_KINDS.items():
        extra = {"low_ports": "remap"} if kind == "rootless" else {}
        host = sizing.host_size(_profile(kind=kind, **extra))
        assert (host.cpus, host.memory_mib, host.cpus_source) == (facts.default_cpus, facts.default_memory_mib, f"default for host.kind {kind}")


def test_a_stack_that_cannot_fit_is_refused_with_the_numbers_and_a_way_out(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(
        'schema_version = 2\n[project]\nname = "acme"\n[host]\nmemory = "1800M"\n[network]\nbind_ip = "192.168.1.10"\n'
        "[capacity]\nconcurrent_calls = 60\n"
    )
    result = run_cli("build", str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    message = result.stderr
    assert f"{path}:5: host.memory: 60 calls on this stack need at least" in message
    assert "memory reservations of 17 containers" in message and "but the host has 1800 MiB (host.memory)" in message
    assert "lower capacity.concurrent_calls to at most " in message and "[[hosts]]" in message
    most = int(message.split("lower capacity.concurrent_calls to at most ")[1].split(",")[0])
    path.write_text(path.read_text().replace("= 60", f"= {most}"))
    assert run_cli("build", str(path), "-o", str(tmp_path / "out")).returncode == 0
    path.write_text(path.read_text().replace(f"= {most}", f"= {most + 1}"))
    assert run_cli("build", str(path), "-o", str(tmp_path / "out2")).returncode == 2


def test_too_many_calls_for_the_cpus_is_refused() -> None:
    with pytest.raises(ProfileError) as caught:
        _profile_with(calls=300, kind="bare-metal", cpus=1, memory="64G")
    assert "host.cpus: 300 calls on this stack need" in str(caught.value)


def _profile_with(calls: int, **host: Any) -> Profile:
    data = copy.deepcopy(BASE)
    data["host"] = host
    data["capacity"] = {"concurrent_calls": calls}
    data["host"]["userland_proxy"] = False
    return validate_profile(data, file="acme.toml", text="", env={})


@settings(max_examples=60, deadline=None)
@given(
    cpus=st.sampled_from([0.5, 1, 1.5, 2, 3, 4, 16]),
    memory_gib=st.integers(min_value=1, max_value=64),
    calls=st.integers(min_value=1, max_value=400),
    webrtc=st.booleans(),
)
def test_every_accepted_profile_stays_within_its_host(cpus: float, memory_gib: int, calls: int, webrtc: bool) -> None:
    data = copy.deepcopy(BASE)
    data.update(
        host={"kind": "bare-metal", "cpus": cpus, "memory": f"{memory_gib}G", "userland_proxy": False},
        capacity={"concurrent_calls": calls},
        components={"webrtc": webrtc},
        network={"bind_ip": "192.168.1.10", "public_ip": "203.0.113.5"},
    )
    try:
        profile = validate_profile(data, file="acme.toml", text="", env={})
    except ProfileError as error:
        assert "host.memory:" in str(error) or "host.cpus:" in str(error) or "capacity" in str(error)
        return
    from omnigen.pipeline import compile_profile

    plan = compile_profile(profile, Secrets(), fake_token).plan
    assert plan.sizing is not None
    assert plan.sizing.memory_needed_mib <= memory_gib * 1024 and plan.sizing.cpus_reservations <= cpus
    for name, limits in plan.limits.items():
        assert 0.01 <= float(limits.cpus) <= cpus, name
        assert float(limits.cpus_reservation) <= float(limits.cpus), name
        assert int(limits.memory_reservation[:-1]) <= int(limits.memory[:-1]) <= memory_gib * 1024, name


def test_explain_shows_the_sums_against_the_host(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text('schema_version = 2\n[project]\nname = "acme"\n[host]\ncpus = 1\nmemory = "3G"\n[network]\nbind_ip = "192.168.1.10"\n[capacity]\nconcurrent_calls = 10\n')
    result = run_cli("explain", str(path))
    assert result.returncode == 0, result.stderr
    assert "Sizing against the host (1 CPUs from host.cpus, 3072 MiB from host.memory)" in result.stdout
    assert "total (17 containers)" in result.stdout and "of 3072 (fits)" in result.stdout


# --- doctor PROFILE against the machine --------------------------------------------------------------


def _root(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = tmp_path / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return tmp_path


LXC_V2 = {
    "/proc/meminfo": "MemTotal:       65843212 kB\nMemFree:        1000 kB\n",
    "/sys/devices/system/cpu/online": "0-15\n",
    "/sys/fs/cgroup/cpu.max": "100000 100000\n",
    "/sys/fs/cgroup/memory.max": str(2 * 1024**3) + "\n",
    "/sys/fs/cgroup/cpuset.cpus.effective": "0-3\n",
}


def test_a_cgroup_v2_lxc_container_is_as_small_as_its_limits(tmp_path: Path) -> None:
    probe = probe_machine_size(HostView(root=_root(tmp_path, LXC_V2), run=None))
    assert probe.facts == {"cpus": "1", "cpus_from": "cgroup v2 cpu.max", "memory_mib": "2048", "memory_from": "cgroup v2 memory.max"}


def test_cgroup_v1_limits_are_read(tmp_path: Path) -> None:
    files = {
        "/proc/meminfo": "MemTotal: 8000000 kB\n",
        "/sys/devices/system/cpu/online": "0-7",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "150000\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "unlimited"
    }
    probe = probe_machine_size(HostView(root=_root(tmp_path, files), run=None))
    assert (probe.facts["cpus"], probe.facts["memory_mib"], probe.facts["memory_from"]) == ("1.5", "7812", "/proc/meminfo MemTotal")


def test_docker_info_counts_what_a_pinned_dockerd_sees(tmp_path: Path) -> None:
    """dockerd under `taskset -c 0` reports NCPU 1 on a 16-CPU machine."""

    def run(argv: Any) -> CommandResult | None:
        return CommandResult(0, f"1 {8 * 1024**3}\n") if argv[0] == "docker" else None

    root = _root(tmp_path, {"/proc/meminfo": "MemTotal: 65843212 kB\n", "/sys/devices/system/cpu/online": "0-15"})
    probe = probe_machine_size(HostView(root=root, run=run))
    assert (probe.facts["cpus"], probe.facts["cpus_from"]) == ("1", "docker info NCPU")


def test_doctor_profile_names_cpus_and_memory_the_machine_lacks(tmp_path: Path) -> None:
    diagnosis = diagnose(HostView(root=_root(tmp_path, LXC_V2), run=None), _profile(kind="lxc-unprivileged", cpus=2, memory="4G"))
    problems = "\n".join(diagnosis.problems)
    assert "host.cpus: the profile sizes the stack for 2 CPUs (host.cpus) but this machine gives 1 (cgroup v2 cpu.max)" in problems
    assert "set host.cpus = 1" in problems
    assert 'host.memory: the profile sizes the stack for 4096 MiB (host.memory) but this machine has 2048 MiB' in problems


def test_doctor_cli_exits_1_on_a_profile_too_big_for_the_root(tmp_path: Path) -> None:
    root = _root(tmp_path / "root", LXC_V2)
    result = run_cli("doctor", str(ROOT / "profiles" / "proxmox-lxc.toml"), "--root", str(root))
    assert result.returncode == 1
    assert "machine size           1 CPUs (cgroup v2 cpu.max), 2048 MiB of memory (cgroup v2 memory.max)" in result.stdout
    assert "PROBLEM: host.cpus:" in result.stdout


def test_a_profile_sized_by_the_kind_default_still_builds_with_a_warning() -> None:
    """Profiles written before host.cpus existed keep building; the warning says to declare the machine."""
    from omnigen.pipeline import compile_profile

    profile = _profile_with(calls=526, kind="vps")
    warnings = [warning.render() for warning in compile_profile(profile, Secrets(), fake_token).plan.warnings]
    assert any(text.startswith("warning: host.cpus: 526 calls on this stack need") and "(default for host.kind vps)" in text for text in warnings)
    assert any("`omnigen doctor PROFILE` reads them" in text for text in warnings)
