"""Probes of the machine `omnigen doctor` runs on: no root, no running Docker needed.

Each probe reads a few files (under a root that tests point at a fixture tree),
runs a CLI through an injected runner, or binds a socket through an injected
binder, and returns a Probe. A probe never raises: whatever it cannot find out
is reported as "unknown" with the reason. `diagnose` combines the probes into a
suggested host kind, the problems found and their fixes.

The runc/AppArmor condition (DOMAIN.md section 2): runc releases carrying the
CVE-2025-52881 fix (1.2.8, 1.3.3, 1.4.0-rc.3 and later) reopen /proc/sys files
through a private procfs mount, which AppArmor inside a nested system container
denies, so every container fails with `open sysctl
net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied`. The
fix is on the LXC host (opencontainers/runc#4968); no compose edit helps.
"""

from __future__ import annotations

import errno
import functools
import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from omnigen.inputs.profile import Profile
    from omnigen.plan.feasibility import Layout

Status = Literal["ok", "info", "unknown", "problem"]
BindOutcome = Literal["free", "busy", "denied", "no-address", "error"]

COMMAND_TIMEOUT_SECONDS = 5
MAX_PORTS_LISTED = 8


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str = ""


# argv -> result, or None when the program is not installed.
Runner = Callable[[Sequence[str]], CommandResult | None]
# (IPv4 address, port, "tcp" | "udp") -> what binding it did.
Binder = Callable[[str, int, str], BindOutcome]


def system_runner(argv: Sequence[str]) -> CommandResult | None:
    """Run a CLI of this machine, briefly, never through a shell."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"no answer within {COMMAND_TIMEOUT_SECONDS} s")
    except OSError as exc:
        return CommandResult(126, "", exc.strerror or str(exc))
    return CommandResult(done.returncode, done.stdout, done.stderr)


def socket_binder(address: str, port: int, protocol: str) -> BindOutcome:
    """Try to bind the port as this (unprivileged) user, then let it go."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "busy"
        if exc.errno == errno.EACCES:
            return "denied"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "no-address"
        return "error"
    return "free"


@dataclass(frozen=True)
class HostView:
    """The machine as the probes see it; every way in is injectable for tests."""

    root: Path = Path("/")
    run: Runner | None = system_runner  # None: do not run commands (e.g. --root points at another system)
    environ: Mapping[str, str] = field(default_factory=dict)
    system: str = "Linux"  # platform.system()
    bind: Binder = socket_binder

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str:
        """File text under the root; OSError when missing or unreadable."""
        return self.path(absolute).read_text(encoding="utf-8", errors="replace")

    @property
    def home(self) -> str | None:
        return self.environ.get("HOME")


@dataclass(frozen=True)
class Probe:
    name: str
    status: Status
    summary: str
    facts: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        return f"{self.status:<8} {self.name:<22} {self.summary}"


def _why(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not present"
    if isinstance(exc, PermissionError):
        return "permission denied (needs root)"
    return exc.strerror or type(exc).__name__


def _command(view: HostView, argv: Sequence[str]) -> tuple[CommandResult | None, str]:
    """(result, reason when there is none)."""
    if view.run is None:
        return None, "commands are not run when --root examines another filesystem"
    result = view.run(argv)
    if result is None:
        return None, f"`{argv[0]}` is not installed"
    return result, ""


# --- Container, virtualisation, user namespace ----------------------------------------------------

_CGROUP_HINTS = (("lxc.payload", "lxc"), ("/lxc/", "lxc"), ("/docker/", "docker"), ("/kubepods", "kubernetes"), ("/libpod-", "podman"))


def probe_container(view: HostView) -> Probe:
    evidence: dict[str, str] = {}
    unknown: list[str] = []
    try:
        text = view.read("/run/systemd/container").strip()
        if text:
            evidence["/run/systemd/container"] = text
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError):
            unknown.append(f"/run/systemd/container: {_why(exc)}")
    try:
        entries = view.read("/proc/1/environ").split("\0")
        for entry in entries:
            if entry.startswith("container="):
                evidence["/proc/1/environ"] = entry.partition("=")[2]
    except OSError as exc:
        unknown.append(f"/proc/1/environ: {_why(exc)}")
    try:
        for line in view.read("/proc/self/cgroup").splitlines():
            hint = next((name for marker, name in _CGROUP_HINTS if marker in line), None)
            if hint:
                evidence["/proc/self/cgroup"] = hint
                break
    except OSError as exc:
        unknown.append(f"/proc/self/cgroup: {_why(exc)}")
    if view.path("/.dockerenv").exists():
        evidence["/.dockerenv"] = "docker"
    result, reason = _command(view, ("systemd-detect-virt", "--container"))
    if result is not None and result.stdout.strip():
        evidence["systemd-detect-virt"] = result.stdout.strip()
    elif reason:
        unknown.append(reason)
    kinds = [value for value in evidence.values() if value and value != "none"]
    if kinds:
        kind = kinds[0]
        sources = ", ".join(source for source, value in evidence.items() if value == kind)
        return Probe("container", "info", f"inside a container: {kind} ({sources})", {"container": kind})
    if evidence:
        return Probe("container", "info", f"not in a container ({', '.join(evidence)})", {"container": "none"})
    if unknown and len(unknown) >= 3:
        return Probe("container", "unknown", "; ".join(unknown), {})
    return Probe("container", "info", "not in a container (no container markers found)", {"container": "none"})


def probe_user_namespace(view: HostView) -> Probe:
    try:
        first = view.read("/proc/self/uid_map").split()
    except OSError as exc:
        return Probe("user namespace", "unknown", f"/proc/self/uid_map: {_why(exc)}")
    if len(first) < 3 or not all(part.isdigit() for part in first[:3]):
        return Probe("user namespace", "unknown", f"/proc/self/uid_map: unreadable content {' '.join(first)[:40]!r}")
    inside, outside, count = (int(part) for part in first[:3])
    if inside == 0 and outside == 0 and count == 4294967295:
        return Probe("user namespace", "info", "initial user namespace: root here is root on the host", {"userns": "initial"})
    return Probe(
        "user namespace", "info", f"root here is uid {outside} on the host (unprivileged user namespace)", {"userns": "mapped", "host_uid": str(outside)}
    )


_VM_VENDORS = ("qemu", "kvm", "vmware", "xen", "microsoft corporation", "amazon ec2", "google", "digitalocean", "hetzner", "innotek", "openstack", "ovh", "linode", "vultr", "bochs")


def probe_virtualization(view: HostView) -> Probe:
    result, reason = _command(view, ("systemd-detect-virt", "--vm"))
    if result is not None and result.stdout.strip():
        vm = result.stdout.strip()
        return Probe("virtualization", "info", "bare metal (systemd-detect-virt)" if vm == "none" else f"{vm} virtual machine (systemd-detect-virt)", {"vm": vm})
    clues: list[str] = []
    try:
        vendor = " ".join(view.read(f"/sys/class/dmi/id/{name}").strip() for name in ("sys_vendor", "product_name")).strip()
        if any(name in vendor.lower() for name in _VM_VENDORS):
            return Probe("virtualization", "info", f"virtual machine ({vendor}, /sys/class/dmi/id)", {"vm": "vm"})
        clues.append(f"DMI says {vendor!r}")
    except OSError as exc:
        clues.append(f"/sys/class/dmi/id: {_why(exc)}")
    try:
        flags = next((line for line in view.read("/proc/cpuinfo").splitlines() if line.startswith("flags")), "")
        if " hypervisor" in flags:
            return Probe("virtualization", "info", "virtual machine (the CPU reports the hypervisor flag)", {"vm": "vm"})
        if flags:
            return Probe("virtualization", "info", "bare metal (no hypervisor CPU flag; " + "; ".join(clues) + ")", {"vm": "none"})
    except OSError as exc:
        clues.append(f"/proc/cpuinfo: {_why(exc)}")
    return Probe("virtualization", "unknown", "; ".join([reason, *clues] if reason else clues))


# --- AppArmor and the container runtime ----------------------------------------------------------


def probe_apparmor(view: HostView) -> Probe:
    facts: dict[str, str] = {}
    try:
        enabled = view.read("/sys/module/apparmor/parameters/enabled").strip()
        facts["enabled"] = "yes" if enabled.upper().startswith("Y") else "no"
    except OSError as exc:
        if not view.path("/sys/module/apparmor").exists() and view.path("/sys/module").exists():
            facts["enabled"] = "no"
        elif not view.path("/sys/module").exists():
            return Probe("apparmor", "unknown", f"/sys/module: {_why(exc)}")
    label = None
    for path in ("/proc/self/attr/apparmor/current", "/proc/self/attr/current"):
        try:
            label = view.read(path).strip().strip("\0")
            break
        except OSError:
            continue
    if facts.get("enabled") == "no":
        return Probe("apparmor", "info", "AppArmor is not enabled in this kernel", facts)
    if label is None:
        return Probe("apparmor", "unknown", "AppArmor is enabled but this process's label is unreadable (/proc/self/attr)", facts)
    facts["label"] = label
    confined = bool(label) and label != "unconfined"
    facts["confined"] = "yes" if confined else "no"
    # A stacked label ("outer//&:namespace:inner") is an AppArmor namespace: LXC/Incus nesting.
    facts["nested"] = "yes" if "//&:" in label else "no"
    if not confined:
        return Probe("apparmor", "info", "enabled; this process is unconfined", facts)
    nested = ", stacked namespace (container nesting)" if facts["nested"] == "yes" else ""
    return Probe("apparmor", "info", f"this process is confined by {label!r}{nested}", facts)


def runc_reopens_procfs(version: str) -> bool | None:
    """Whether this runc carries the CVE-2025-52881 fix that AppArmor in nested containers breaks:
    1.2.8+, 1.3.3+, 1.4.0-rc.3+ and every later release. None when the version cannot be read."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(?:-rc\.?(\d+))?", version)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups()[:3])
    rc = match.group(4)
    if (major, minor) == (1, 2):
        return patch >= 8
    if (major, minor) == (1, 3):
        return patch >= 3
    if (major, minor) == (1, 4):
        return patch > 0 or rc is None or int(rc) >= 3
    return (major, minor) > (1, 4)


_VERSION_PATTERNS = {
    "runc": (("runc", "--version"), re.compile(r"runc version\s+(\S+)")),
    "containerd": (("containerd", "--version"), re.compile(r"containerd\s+\S+\s+v?(\d[\w.+~-]*)")),
    "docker": (("docker", "--version"), re.compile(r"Docker version\s+([^,\s]+)")),
}


def probe_runtime(view: HostView, name: str) -> Probe:
    argv, pattern = _VERSION_PATTERNS[name]
    result, reason = _command(view, argv)
    if result is None:
        return Probe(name, "unknown", reason)
    match = pattern.search(result.stdout)
    if result.returncode != 0 or match is None:
        said = (result.stderr or result.stdout).strip().splitlines()
        return Probe(name, "unknown", f"`{' '.join(argv)}` gave no version (exit {result.returncode}: {said[0][:80] if said else 'no output'})")
    version = match.group(1)
    facts = {"version": version}
    if name == "runc":
        affected = runc_reopens_procfs(version)
        facts["procfs_reopen"] = "unknown" if affected is None else "yes" if affected else "no"
        if affected:
            return Probe(name, "info", f"{version} (reopens /proc/sys through a private procfs: CVE-2025-52881 fix)", facts)
    return Probe(name, "info", version, facts)


# --- Docker daemon flavour and settings ----------------------------------------------------------


def _context(view: HostView) -> str | None:
    result, _ = _command(view, ("docker", "context", "show"))
    return result.stdout.strip() if result is not None and result.returncode == 0 and result.stdout.strip() else None


def probe_rootless(view: HostView) -> Probe:
    evidence = []
    docker_host = view.environ.get("DOCKER_HOST", "")
    if "/run/user/" in docker_host:
        evidence.append(f"DOCKER_HOST={docker_host}")
    context = _context(view)
    if context == "rootless":
        evidence.append("docker context 'rootless'")
    home = view.home
    if home and view.path(f"{home}/.config/systemd/user/docker.service").exists():
        evidence.append("~/.config/systemd/user/docker.service")
    hints = []
    if home and view.path(f"{home}/.config/docker/daemon.json").exists():
        hints.append("~/.config/docker/daemon.json")
    kit, _ = _command(view, ("rootlesskit", "--version"))
    if kit is not None and kit.returncode == 0:
        hints.append("rootlesskit installed")
    if evidence:
        return Probe("rootless docker", "info", "yes: " + ", ".join(evidence + hints), {"rootless": "yes"})
    detail = f" ({', '.join(hints)}, but no rootless daemon configured)" if hints else ""
    return Probe("rootless docker", "info", f"no{detail}", {"rootless": "no"})


def probe_docker_desktop(view: HostView) -> Probe:
    evidence = []
    if view.system in {"Darwin", "Windows"}:
        evidence.append(f"{view.system} runs Docker in a VM")
    docker_host = view.environ.get("DOCKER_HOST", "")
    if "/.docker/desktop/" in docker_host or "docker_engine" in docker_host:
        evidence.append(f"DOCKER_HOST={docker_host}")
    context = _context(view)
    if context and context.startswith("desktop-"):
        evidence.append(f"docker context {context!r}")
    home = view.home
    if home and view.path(f"{home}/.docker/desktop").is_dir():
        evidence.append("~/.docker/desktop")
    if evidence:
        return Probe("docker desktop", "info", "yes: " + ", ".join(evidence), {"desktop": "yes"})
    return Probe("docker desktop", "info", "no", {"desktop": "no"})


def probe_daemon_json(view: HostView, rootless: bool = False, desktop: bool = False) -> Probe:
    # Each flavour of daemon reads its own file: rootless dockerd the user's, Docker Desktop ~/.docker/daemon.json.
    path, shown = "/etc/docker/daemon.json", "/etc/docker/daemon.json"
    if view.home and (rootless or desktop):
        relative = ".config/docker/daemon.json" if rootless else ".docker/daemon.json"
        path, shown = f"{view.home}/{relative}", f"~/{relative}"
    try:
        text = view.read(path)
    except FileNotFoundError:
        return Probe("daemon.json", "info", f"{shown} not present: userland-proxy is on (the default)", {"userland_proxy": "on", "path": shown})
    except OSError as exc:
        return Probe("daemon.json", "unknown", f"{shown}: {_why(exc)}")
    try:
        settings = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        return Probe(
            "daemon.json",
            "problem",
            f"{shown} is not valid JSON (line {exc.lineno}: {exc.msg}): dockerd refuses to start with it; fix the file",
            {"path": shown, "invalid": "yes"},
        )
    if not isinstance(settings, dict):
        return Probe("daemon.json", "problem", f"{shown} is not a JSON object: dockerd refuses to start with it", {"path": shown, "invalid": "yes"})
    value = settings.get("userland-proxy", True)
    if not isinstance(value, bool):
        return Probe("daemon.json", "problem", f"{shown}: userland-proxy must be true or false (got {value!r})", {"path": shown, "invalid": "yes"})
    state = "on" if value else "off"
    origin = "" if "userland-proxy" in settings else " (not set: the default)"
    return Probe("daemon.json", "info", f"{shown}: userland-proxy {state}{origin}", {"userland_proxy": state, "path": shown})


def probe_unprivileged_port_start(view: HostView) -> Probe:
    path = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    try:
        text = view.read(path).strip()
    except OSError as exc:
        return Probe("unprivileged ports", "unknown", f"{path}: {_why(exc)}")
    if not text.isdigit():
        return Probe("unprivileged ports", "unknown", f"{path}: unexpected content {text[:20]!r}")
    return Probe("unprivileged ports", "info", f"ports from {text} up can be bound without root ({path})", {"start": text})


# --- CPUs and memory: what the containers can get --------------------------------------------------


def _cpu_list_count(text: str) -> int | None:
    """Number of CPUs in a kernel CPU list such as `0-3,6` (cpuset.cpus.effective, /sys/devices/system/cpu/online)."""
    count = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        count += int(last or first) - int(first) + 1
    return count or None


def _cgroup_cpus(view: HostView) -> tuple[float | None, str]:
    """The CPU quota of this cgroup (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), or None when unlimited."""
    try:
        quota, _, period = view.read("/sys/fs/cgroup/cpu.max").strip().partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period):
            return int(quota) / int(period), "cgroup v2 cpu.max"
        return None, ""
    except OSError:
        pass
    for folder in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        try:
            quota_text = view.read(f"{folder}/cpu.cfs_quota_us").strip()
            period_text = view.read(f"{folder}/cpu.cfs_period_us").strip()
        except OSError:
            continue
        if quota_text.lstrip("-").isdigit() and int(quota_text) > 0 and period_text.isdigit() and int(period_text):
            return int(quota_text) / int(period_text), "cgroup v1 cpu.cfs_quota_us"
        return None, ""
    return None, ""


def _cgroup_memory_mib(view: HostView) -> tuple[int | None, str]:
    for path, label in (("/sys/fs/cgroup/memory.max", "cgroup v2 memory.max"), ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "cgroup v1 memory.limit_in_bytes")):
        try:
            text = view.read(path).strip()
        except OSError:
            continue
        # v1 writes "unlimited" as a huge page-aligned number.
        if text.isdigit() and int(text) < 1 << 60:
            return int(text) // (1024 * 1024), label
        return None, ""
    return None, ""


def probe_machine_size(view: HostView) -> Probe:
    """What the containers can get: the fewest CPUs and the least memory among every limit that applies.

    In an LXC container /proc/meminfo and /proc/cpuinfo may show the host's (unless LXCFS covers them) while
    the cgroup holds the real limit, so every source is read and the smallest wins. `docker info`, when it
    answers, is what dockerd itself counts (a dockerd started under taskset sees only its CPUs).
    """
    cpus: list[tuple[float, str]] = []
    memory: list[tuple[int, str]] = []
    result, _ = _command(view, ("docker", "info", "--format", "{{.NCPU}} {{.MemTotal}}"))
    if result is not None and result.returncode == 0:
        parts = result.stdout.split()
        if len(parts) == 2 and all(part.isdigit() for part in parts):
            cpus.append((int(parts[0]), "docker info NCPU"))
            memory.append((int(parts[1]) // (1024 * 1024), "docker info MemTotal"))
    for path, label in (("/sys/fs/cgroup/cpuset.cpus.effective", "cgroup cpuset.cpus.effective"), ("/sys/devices/system/cpu/online", "online CPUs")):
        try:
            count = _cpu_list_count(view.read(path))
        except OSError:
            continue
        if count:
            cpus.append((count, label))
    if view.run is not None and view.root.resolve() == Path("/"):
        import os

        cpus.append((len(os.sched_getaffinity(0)), "nproc"))
    quota, label = _cgroup_cpus(view)
    if quota is not None:
        cpus.append((quota, label))
    try:
        for line in view.read("/proc/meminfo").splitlines():
            if line.startswith("MemTotal:") and line.split()[1].isdigit():
                memory.append((int(line.split()[1]) // 1024, "/proc/meminfo MemTotal"))
    except OSError:
        pass
    limit, label = _cgroup_memory_mib(view)
    if limit is not None:
        memory.append((limit, label))
    if not cpus or not memory:
        return Probe("machine size", "unknown", "cannot tell how many CPUs or how much memory this machine has (no /proc/meminfo, cgroup or CPU list)")
    fewest, cpus_from = min(cpus)
    least, memory_from = min(memory)
    return Probe(
        "machine size",
        "info",
        f"{fewest:g} CPUs ({cpus_from}), {least} MiB of memory ({memory_from})",
        {"cpus": f"{fewest:g}", "cpus_from": cpus_from, "memory_mib": str(least), "memory_from": memory_from},
    )


# --- The profile's ports -------------------------------------------------------------------------


@dataclass(frozen=True)
class PortCheck:
    address: str
    port: int
    protocol: str
    key: str
    outcome: BindOutcome


def _spans(checks: Iterable[PortCheck]) -> str:
    shown = [f"{check.address}:{check.port}/{check.protocol} ({check.key})" for check in checks]
    more = f" and {len(shown) - MAX_PORTS_LISTED} more" if len(shown) > MAX_PORTS_LISTED else ""
    return ", ".join(shown[:MAX_PORTS_LISTED]) + more


def probe_ports(view: HostView, profile: Profile, layout: Layout) -> Probe:
    """Whether this machine can bind every port the profile publishes here, as the loader laid them out.

    With [[hosts]] this machine is the host (or hosts) whose private address it has: their
    bundles' ports are tried; the others publish on other machines."""
    if layout.ports is not None:
        uses = layout.ports.uses
    else:
        here = [ports for ports in layout.hosts if view.bind(str(profile.hosts[ports.index].address), 0, "tcp") != "no-address"]
        if not here:
            addresses = ", ".join(f"{host.name} {host.address} (hosts.{index}.address)" for index, host in enumerate(profile.hosts))
            return Probe("profile ports", "unknown", f"this machine has none of the hosts' addresses ({addresses}); run doctor on each host", {"checked": "0"})
        uses = tuple(use for ports in here for use in ports.bundle.uses)
    checks = [
        PortCheck(use.host_ip, port, use.protocol, use.key, view.bind(use.host_ip, port, use.protocol))
        for use in uses
        for port in range(use.start, use.end + 1)
    ]
    busy = [check for check in checks if check.outcome == "busy"]
    missing = [check for check in checks if check.outcome == "no-address"]
    unsure = [check for check in checks if check.outcome in {"denied", "error"}]
    facts = {"checked": str(len(checks)), "busy": str(len(busy)), "unchecked": str(len(unsure))}
    if missing:
        address = missing[0].address
        return Probe(
            "profile ports",
            "problem",
            f"{address} is not an address of this machine, so Docker cannot publish on it (network.bind_ip); "
            "use one of this machine's addresses or 0.0.0.0",
            facts,
        )
    if busy:
        return Probe(
            "profile ports",
            "problem",
            f"{len(busy)} of {len(checks)} ports are in use: {_spans(busy)}; stop what holds them (`ss -lntup`) or move them in the profile "
            "(if this deployment is already running, its own docker-proxy holds them)",
            facts,
        )
    if unsure:
        return Probe(
            "profile ports",
            "unknown",
            f"{len(checks) - len(unsure)} ports free; {len(unsure)} could not be tried without root: {_spans(unsure)}",
            facts,
        )
    return Probe("profile ports", "ok", f"all {len(checks)} published ports are free", facts)


# --- Diagnosis -----------------------------------------------------------------------------------

SYSCTL_ERROR = "open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied"
HOST_SIDE_FIX = (
    "fix it on the LXC host, not in the deployment: Proxmox VE: update lxc-pve to 6.0.5-2 or later "
    "(`apt update && apt install lxc-pve` on the node) and restart the container; Incus: 6.19 or later; "
    "LXD: a release with the AppArmor fix; plain LXC: see lxc/lxc#4609; workaround until then: "
    "`lxc.apparmor.profile: unconfined` in the container's config (/etc/pve/lxc/<id>.conf), which drops its "
    "AppArmor confinement. Never edit docker-compose.yml for this: privileged, security_opt or sysctls do not fix it "
    "(opencontainers/runc#4968)"
)


def probe_shell_environment(view: HostView, profile: Profile, layout: Layout) -> Probe:
    """Variables this shell exports that docker compose would use instead of the folder's .env.

    Compose fills `${VAR}` in docker-compose.yml from exported variables first. Secrets never
    go that way (services read them from secrets/<service>.env), but ports, host names or TZ
    do: an exported `TZ` or `ACD_SIP_PORT` silently changes what the services get.
    """
    from omnigen.plan.make import make_topology

    # The plan without secrets: they never go through the shell, only the other values are compared.
    plan = make_topology(profile, layout)
    plain = {var.key: var.value for section in plan.env for var in section.variables}
    overridden = sorted(key for key, value in plain.items() if key in view.environ and view.environ[key] != value)
    if not overridden:
        return Probe("shell environment", "ok", "no exported variable overrides a value of the profile's .env")
    return Probe(
        "shell environment",
        "problem",
        f"this shell exports {', '.join(overridden)}, which docker compose would use instead of the .env's values; "
        f"unset them before `docker compose up` (e.g. `env -u {overridden[0]} docker compose up -d`)",
        {"overridden": ",".join(overridden)},
    )


@dataclass(frozen=True)
class Diagnosis:
    probes: tuple[Probe, ...]
    suggested_kind: str | None
    kind_reason: str
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems


def _safely(name: str, probe: Callable[[], Probe]) -> Probe:
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - one broken probe must not hide the others' answers
        return Probe(name, "unknown", f"the probe failed: {type(exc).__name__}: {exc}")


def _fact(probes: Mapping[str, Probe], name: str, key: str) -> str | None:
    probe = probes.get(name)
    return probe.facts.get(key) if probe else None


def _suggest(found: Mapping[str, Probe]) -> tuple[str | None, str]:
    if _fact(found, "docker desktop", "desktop") == "yes":
        return "docker-desktop", found["docker desktop"].summary.removeprefix("yes: ")
    if _fact(found, "rootless docker", "rootless") == "yes":
        return "rootless", found["rootless docker"].summary.removeprefix("yes: ")
    container = _fact(found, "container", "container")
    if container in {"lxc", "lxc-libvirt", "incus", "lxd"}:
        userns = _fact(found, "user namespace", "userns")
        if userns == "initial":
            return "lxc-privileged", f"{found['container'].summary}; {found['user namespace'].summary}"
        detail = found["user namespace"].summary if "user namespace" in found else "user namespace unknown"
        return "lxc-unprivileged", f"{found['container'].summary}; {detail}"
    if container and container != "none":
        return None, f"{found['container'].summary}: run `omnigen doctor` on the machine whose Docker daemon runs the deployment"
    vm = _fact(found, "virtualization", "vm")
    if vm and vm != "none":
        return "vps", found["virtualization"].summary
    if vm == "none":
        return "bare-metal", found["virtualization"].summary
    return None, "not enough evidence (see the unknown probes)"


def diagnose(view: HostView, profile: Profile | None = None, layout: Layout | None = None) -> Diagnosis:
    """Probe the machine; compare it with the profile when one is given (and the layout its loader checked)."""
    probes: list[Probe] = [
        _safely("container", lambda: probe_container(view)),
        _safely("user namespace", lambda: probe_user_namespace(view)),
        _safely("virtualization", lambda: probe_virtualization(view)),
        _safely("apparmor", lambda: probe_apparmor(view)),
    ]
    for runtime in ("runc", "containerd", "docker"):
        probes.append(_safely(runtime, functools.partial(probe_runtime, view, runtime)))
    probes += [
        _safely("rootless docker", lambda: probe_rootless(view)),
        _safely("docker desktop", lambda: probe_docker_desktop(view)),
    ]
    rootless = any(probe.facts.get("rootless") == "yes" for probe in probes)
    desktop = any(probe.facts.get("desktop") == "yes" for probe in probes)
    probes.append(_safely("daemon.json", lambda: probe_daemon_json(view, rootless, desktop)))
    probes.append(_safely("unprivileged ports", lambda: probe_unprivileged_port_start(view)))
    probes.append(_safely("machine size", lambda: probe_machine_size(view)))
    if profile is not None:
        from omnigen.plan import feasibility

        # The loader's layout when given (doctor's), else laid out here: once, for both probes.
        checked = layout if layout is not None else feasibility.layout(profile)
        probes.append(_safely("profile ports", lambda: probe_ports(view, profile, checked)))
        probes.append(_safely("shell environment", lambda: probe_shell_environment(view, profile, checked)))
    found = {probe.name: probe for probe in probes}
    kind, reason = _suggest(found)

    problems = [f"{probe.name}: {probe.summary}" for probe in probes if probe.status == "problem"]
    notes: list[str] = []
    container = _fact(found, "container", "container")
    in_system_container = container in {"lxc", "lxc-libvirt", "incus", "lxd"}
    confined = _fact(found, "apparmor", "confined") == "yes"
    runc_affected = _fact(found, "runc", "procfs_reopen")
    if in_system_container and confined:
        label = _fact(found, "apparmor", "label")
        if runc_affected == "yes":
            problems.append(
                f"runc {_fact(found, 'runc', 'version')} inside this {container} container under the AppArmor profile {label!r}: "
                f"Docker fails to start any container (even hello-world) with `{SYSCTL_ERROR}`; {HOST_SIDE_FIX}"
            )
        elif runc_affected is None or runc_affected == "unknown":
            notes.append(
                f"this {container} container is confined by AppArmor ({label!r}) and the runc version is unknown: if containers fail "
                f"with `{SYSCTL_ERROR}`, {HOST_SIDE_FIX}"
            )
    if kind == "docker-desktop":
        notes.append("Docker Desktop is for development: UDP publishing is unreliable and small port ranges are all it carries")
    if profile is not None:
        problems += _profile_problems(profile, found, kind, reason)
        notes += _profile_notes(profile, found, kind, reason)
    return Diagnosis(tuple(probes), kind, reason, tuple(problems), tuple(notes))


def _profile_problems(profile: Profile, found: Mapping[str, Probe], kind: str | None, reason: str) -> list[str]:
    problems = []
    declared = profile.host.kind
    # vps and bare-metal differ only in how much the budget assumes the host can spare: a note, not a problem.
    if kind is not None and kind != declared and {kind, declared} != {"vps", "bare-metal"}:
        problems.append(
            f'host.kind: the profile says "{declared}" but this machine looks like {kind} ({reason}); '
            f'set host.kind = "{kind}" so its rules, port budget and warnings apply'
        )
    daemon = _fact(found, "daemon.json", "userland_proxy")
    if daemon == "on" and not profile.host.userland_proxy:
        path = _fact(found, "daemon.json", "path")
        problems.append(
            f"host.userland_proxy: the profile declares false but {path} leaves docker-proxy on, so every published port costs "
            f'a process the budget did not count; set "userland-proxy": false there and restart dockerd, or set host.userland_proxy = true'
        )
    problems += _size_problems(profile, found)
    start = _fact(found, "unprivileged ports", "start")
    if profile.host.kind == "rootless" and profile.host.low_ports == "allow" and start is not None:
        low = sorted({port for port in (profile.ports.sip, profile.ports.http, profile.ports.https) if port < int(start)})
        if low:
            problems.append(
                f'host.low_ports = "allow", but net.ipv4.ip_unprivileged_port_start is {start}, so rootless Docker cannot publish '
                f"{', '.join(map(str, low))}; lower it on the host (`sysctl net.ipv4.ip_unprivileged_port_start={low[0]}`) "
                'or set host.low_ports = "remap"'
            )
    return problems


def _size_problems(profile: Profile, found: Mapping[str, Probe]) -> list[str]:
    """host.cpus / host.memory above what this machine gives the containers: dockerd refuses the limits, or the stack does not fit."""
    from omnigen.plan.sizing import host_size

    cpus, memory = _fact(found, "machine size", "cpus"), _fact(found, "machine size", "memory_mib")
    if profile.hosts or cpus is None or memory is None:
        return []
    declared = host_size(profile)
    problems = []
    if declared.cpus > float(cpus) + 1e-9:
        problems.append(
            f"host.cpus: the profile sizes the stack for {declared.cpus:g} CPUs ({declared.cpus_source}) but this machine gives "
            f"{cpus} ({_fact(found, 'machine size', 'cpus_from')}): dockerd refuses a cpus limit above that "
            f'("Range of CPUs is from 0.01 to {float(cpus):.2f}"); set host.cpus = {cpus} and rebuild'
        )
    if declared.memory_mib > int(memory):
        problems.append(
            f"host.memory: the profile sizes the stack for {declared.memory_mib} MiB ({declared.memory_source}) but this machine has "
            f"{memory} MiB ({_fact(found, 'machine size', 'memory_from')}): the reservations may not fit; "
            f'set host.memory = "{memory}M" and rebuild (omnigen refuses a stack that cannot fit)'
        )
    return problems


def _profile_notes(profile: Profile, found: Mapping[str, Probe], kind: str | None, reason: str) -> list[str]:
    notes = []
    cpus, memory = _fact(found, "machine size", "cpus"), _fact(found, "machine size", "memory_mib")
    if not profile.hosts and cpus is not None and memory is not None:
        from omnigen.plan.sizing import host_size

        declared = host_size(profile)
        if declared.cpus < float(cpus) or declared.memory_mib < int(memory) * 0.9:
            notes.append(
                f"the profile sizes the stack for {declared.cpus:g} CPUs and {declared.memory_mib} MiB; this machine has {cpus} CPUs and "
                f"{memory} MiB: set host.cpus and host.memory to let the services use more"
            )
    if kind is not None and kind != profile.host.kind and {kind, profile.host.kind} == {"vps", "bare-metal"}:
        notes.append(f'the profile says host.kind = "{profile.host.kind}"; this machine looks like {kind} ({reason})')
    daemon = _fact(found, "daemon.json", "userland_proxy")
    if daemon == "off" and profile.host.userland_proxy and profile.host.kind != "rootless":
        notes.append(
            "the daemon runs without docker-proxy but the profile declares host.userland_proxy = true: "
            "set it to false for the larger port budget"
        )
    return notes
