"""What each kind of host can and cannot do, and how many ports it can afford to publish.

Facts come from DOMAIN.md section 5; the port budgets are derived from the
measured publishing costs in omnigen/catalog/costs.py, never typed in as port counts:
a budget is the largest number of published ports whose estimated docker-proxy
memory and start time stay within what that kind of host can spare.

Profile validation (profile.py) and the feasibility checks (feasibility.py) turn the
hard limits into exit-2 errors; caveats.py turns the soft ones into warnings the plan
carries, so `omnigen build` and `omnigen explain` print the same list. This module is
a catalog of facts: it imports no profile and no plan.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from omnigen.catalog import costs
from omnigen.search import most_that_fits

# Rootless Docker binds host ports as an ordinary user: below the host's
# net.ipv4.ip_unprivileged_port_start (1024 by default) that needs a host sysctl.
UNPRIVILEGED_PORT_START = 1024
# host.low_ports = "remap" moves a port below 1024 up by this much: 80 -> 8080, 443 -> 8443.
REMAP_OFFSET = 8000

LanSupport = Literal["works", "warn", "refused"]
LAN_MODES = ("ipvlan", "macvlan")


@dataclass(frozen=True)
class HostKindFacts:
    kind: str
    label: str
    # What this host can spare for publishing ports; the port budget follows from costs.py.
    proxy_memory_mib: float
    start_seconds: float
    budget_reason: str
    # False: the daemon cannot run without docker-proxy (or an equivalent forwarder).
    userland_proxy_optional: bool
    userland_proxy_reason: str
    # Host ports below this need a host-side change.
    unprivileged_port_start: int
    lan_modes: LanSupport
    lan_reason: str
    kernel_modules: bool
    # host.cpus and host.memory when the profile does not say (sizing.py): a small machine of this kind.
    default_cpus: float
    default_memory_mib: int


HOST_KINDS: dict[str, HostKindFacts] = {
    "vps": HostKindFacts(
        kind="vps",
        label="VPS / cloud VM",
        proxy_memory_mib=256,
        start_seconds=120,
        budget_reason="a VPS has 1-4 GB of RAM: a 1001-port range already failed on a 2 GB VPS (moby/moby#22614)",
        userland_proxy_optional=True,
        userland_proxy_reason="",
        unprivileged_port_start=0,
        lan_modes="warn",
        lan_reason=(
            "most VPS providers drop frames from unknown MAC addresses (macvlan) and route only the addresses "
            "they assigned: network.lan.address must be an additional IP the provider routes to this VM"
        ),
        kernel_modules=True,
        default_cpus=2,
        default_memory_mib=4096,
    ),
    "bare-metal": HostKindFacts(
        kind="bare-metal",
        label="bare-metal server",
        proxy_memory_mib=512,
        start_seconds=120,
        budget_reason="a dedicated server can spare more memory, but a restart of the media container must stay under two minutes",
        userland_proxy_optional=True,
        userland_proxy_reason="",
        unprivileged_port_start=0,
        lan_modes="works",
        lan_reason="",
        kernel_modules=True,
        default_cpus=8,
        default_memory_mib=16384,
    ),
    "lxc-privileged": HostKindFacts(
        kind="lxc-privileged",
        label="privileged LXC container",
        proxy_memory_mib=256,
        start_seconds=120,
        budget_reason="an LXC container is sized like a small VM and shares the host kernel's firewall",
        userland_proxy_optional=True,
        userland_proxy_reason="",
        unprivileged_port_start=0,
        lan_modes="warn",
        lan_reason=(
            "the parent must be the container's own interface and the host bridge must pass the extra address "
            "(and, for macvlan, the extra MAC address)"
        ),
        kernel_modules=False,
        default_cpus=2,
        default_memory_mib=4096,
    ),
    "lxc-unprivileged": HostKindFacts(
        kind="lxc-unprivileged",
        label="unprivileged LXC container (e.g. Proxmox CT with nesting=1)",
        proxy_memory_mib=256,
        start_seconds=120,
        budget_reason="an LXC container is sized like a small VM and shares the host kernel's firewall",
        userland_proxy_optional=True,
        userland_proxy_reason="",
        unprivileged_port_start=0,
        lan_modes="warn",
        lan_reason=(
            "macvlan/ipvlan are usually unavailable in an unprivileged container: the parent is a veth whose host "
            "bridge rarely passes extra addresses; run `omnigen doctor` and test `docker network create -d ipvlan` first"
        ),
        kernel_modules=False,
        default_cpus=2,
        default_memory_mib=4096,
    ),
    "rootless": HostKindFacts(
        kind="rootless",
        label="rootless Docker",
        proxy_memory_mib=256,
        start_seconds=120,
        budget_reason="every published port runs through rootlesskit and docker-proxy in the user's session",
        userland_proxy_optional=False,
        userland_proxy_reason="rootless Docker cannot run without the userland proxy: rootlesskit forwards every published port through it",
        unprivileged_port_start=UNPRIVILEGED_PORT_START,
        lan_modes="refused",
        lan_reason=(
            "rootless Docker cannot create macvlan/ipvlan networks: its daemon runs in a user namespace "
            "without CAP_NET_ADMIN on the host's interfaces"
        ),
        kernel_modules=False,
        default_cpus=4,
        default_memory_mib=8192,
    ),
    "docker-desktop": HostKindFacts(
        kind="docker-desktop",
        label="Docker Desktop (development only)",
        proxy_memory_mib=128,
        start_seconds=30,
        budget_reason="Docker Desktop forwards every port from its VM and fails at 500 UDP ports (docker/for-mac#1852)",
        userland_proxy_optional=False,
        userland_proxy_reason=(
            "Docker Desktop forwards every published port from its VM to the host whatever the daemon's "
            "userland-proxy setting, so the budget assumes the forwarding cost"
        ),
        unprivileged_port_start=0,
        lan_modes="refused",
        lan_reason=(
            "Docker Desktop runs containers in a VM: a macvlan/ipvlan interface attaches to the VM's virtual NIC, "
            "not to your LAN"
        ),
        kernel_modules=False,
        default_cpus=2,
        default_memory_mib=4096,
    ),
}


def facts(kind: str) -> HostKindFacts:
    return HOST_KINDS[kind]


def effective_userland_proxy(kind: str, declared: bool) -> bool:
    """The setting costs are computed with: hosts that cannot drop the proxy pay for it anyway."""
    return declared or not facts(kind).userland_proxy_optional


@dataclass(frozen=True)
class Budget:
    kind: str
    userland_proxy: bool
    ports: int  # the largest number of published ports within the limits
    memory_mib: float
    start_seconds: float

    def describe(self) -> str:
        return f"{self.ports} ports ({self.memory_mib:g} MiB of docker-proxy, {self.start_seconds:g} s to start)"


def within(kind: str, cost: costs.PublishingCost) -> bool:
    limits = facts(kind)
    return cost.memory_mib <= limits.proxy_memory_mib and cost.start_seconds <= limits.start_seconds


@functools.cache
def port_budget(kind: str, userland_proxy: bool, host_ip_explicit: bool = True) -> Budget:
    """The most ports a host of this kind can publish with this daemon setting (binary search: costs grow with ports)."""
    proxy = effective_userland_proxy(kind, userland_proxy)

    def fits(ports: int) -> bool:
        explicit, implicit = (ports, 0) if host_ip_explicit else (0, ports)
        return within(kind, costs.publishing_cost(explicit, implicit, proxy))

    most = most_that_fits(0, 65536, fits)  # no ports always fit; 65536 is more ports than exist
    limits = facts(kind)
    return Budget(kind, proxy, most, limits.proxy_memory_mib, limits.start_seconds)


def lan_mode_refusal(kind: str, mode: str) -> str | None:
    """Why `network.mode` cannot be used on this host kind, or None."""
    limits = facts(kind)
    if mode in LAN_MODES and limits.lan_modes == "refused":
        return f'network.mode: "{mode}" does not work on {kind}: {limits.lan_reason} (got "{mode}"); use mode = "bridge"'
    return None


def userland_proxy_refusal(kind: str, declared: bool) -> str | None:
    limits = facts(kind)
    if not declared and kind == "rootless":
        return f"host.userland_proxy: {limits.userland_proxy_reason} (got false); set host.userland_proxy = true"
    return None
