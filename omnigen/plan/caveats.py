"""The caveats of a deployment: what does not stop the build but the user must know.

`plan_warnings` holds a profile and its port layout to the host kind's soft limits
(hostkinds.py) and the reachability of the advertised address (reachability.py), in a
stable order; the plan carries the result, so `omnigen build` and `omnigen explain`
print the same list.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnigen.catalog.hostkinds import LAN_MODES, UNPRIVILEGED_PORT_START, facts
from omnigen.inputs import reachability
from omnigen.inputs.profile import Profile
from omnigen.plan.capacity import PortPlan


@dataclass(frozen=True)
class PlanWarning:
    """A fact about the deployment that does not stop the build but that the user must know."""

    key: str  # the profile key it is about
    message: str

    def render(self) -> str:
        return f"warning: {self.key}: {self.message}"


def plan_warnings(profile: Profile, ports: PortPlan) -> tuple[PlanWarning, ...]:
    """Every non-fatal host-kind and network-mode caveat for this profile, in a stable order."""
    kind = profile.host.kind
    limits = facts(kind)
    mode = profile.network.mode
    found: list[PlanWarning] = []
    publishes_udp = any(use.protocol == "udp" for use in ports.uses)
    if kind == "rootless":
        if publishes_udp:
            found.append(
                PlanWarning(
                    "host.kind",
                    "rootless Docker loses UDP source addresses: rootlesskit's builtin port driver forwards from its own "
                    "address, so pjsip identify-by-IP and ACLs see the proxy, not the phone or trunk; authenticate "
                    "peers by username/password",
                )
            )
        found.append(PlanWarning("host.userland_proxy", limits.userland_proxy_reason + "; the port budget assumes its cost"))
    if kind == "docker-desktop":
        found.append(
            PlanWarning(
                "host.kind",
                "Docker Desktop is for development: UDP publishing is unreliable and NAT bindings are dropped after "
                "120 s of silence, so calls can lose audio mid-call; keep capacity small and deploy on a server",
            )
        )
        if not profile.host.userland_proxy:
            found.append(PlanWarning("host.userland_proxy", limits.userland_proxy_reason))
    if kind == "lxc-unprivileged" and profile.components.webrtc:  # rtpengine is the only media relay
        found.append(
            PlanWarning(
                "host.kind",
                "unprivileged LXC cannot load kernel modules: media relays must forward in userspace "
                "(rtpengine table = -1), which costs CPU per call",
            )
        )
    if kind in {"lxc-unprivileged", "lxc-privileged"}:
        found.append(
            PlanWarning(
                "host.kind",
                "if even `docker run hello-world` fails with `open sysctl net.ipv4.ip_unprivileged_port_start file: "
                "reopen fd 8: permission denied`, the fix is on the LXC host, not in this deployment: run `omnigen doctor`",
            )
        )
    if kind != "rootless" and profile.host.low_ports != "refuse":
        found.append(PlanWarning("host.low_ports", f'"{profile.host.low_ports}" only applies to host.kind = "rootless"; it has no effect on {kind}'))
    for use in ports.uses:
        if use.remapped_from is not None:
            found.append(
                PlanWarning(
                    use.key,
                    f"{use.remapped_from} is below {UNPRIVILEGED_PORT_START}, so it is published as {use.start} "
                    f'(host.low_ports = "remap"); clients must use port {use.start}',
                )
            )
    if mode in LAN_MODES:
        if limits.lan_modes == "warn":
            found.append(PlanWarning("network.mode", f'"{mode}" on {kind}: {limits.lan_reason}'))
        lan = profile.network.lan
        address = lan.address if lan else "the media address"
        found.append(
            PlanWarning(
                "network.lan.address",
                f"the host itself cannot reach {address} through its own {mode} parent interface (the kernel isolates "
                f"{mode} children from their parent); phones and trunks can, and the other services reach Asterisk over "
                "the compose network",
            )
        )
    if not profile.hosts and (advertised := _advertised_caveat(profile)):
        found.append(advertised)
    return tuple(found)


def _advertised_caveat(profile: Profile) -> PlanWarning | None:
    key, address = profile.network.advertised
    caveat = reachability.advertised_caveat(address)
    return PlanWarning(key, caveat) if caveat else None
