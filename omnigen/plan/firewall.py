"""What the host and the network in front of it must let through, and the nftables rules that do it.

Two audiences, one list (`Opening`):

- the operator of a cloud security group, a router or a LAN firewall: `omnigen explain`
  prints every opening (protocol, ports, the address it reaches) and, with
  network.public_ip, the 1:1 forwards from the public address. In ipvlan/macvlan mode
  Asterisk's SIP and RTP are not published: they go straight to network.lan.address,
  and only a firewall in front of the host can filter them;
- the host: `firewall/nftables.conf` (templates/firewall/) lets new connections that
  Docker DNATs toward the compose network through only on the published ports, SIP only
  from network.sip_allow when it is set, and drops the rest. It hooks `forward` in its own
  `inet` table at priority filter - 1, the position of Docker's DOCKER-USER chain (the
  first rule of FORWARD, before Docker's own accept rules), without touching the tables
  dockerd manages. It never filters INPUT: SSH and the host's own services are left alone.

Pure functions of the plan's published ports; plan.py calls `firewall_plan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"


@dataclass(frozen=True)
class Opening:
    """One rule for a firewall in front of the host: let `protocol` to `ports` of `address` through."""

    protocol: str
    start: int
    end: int
    address: str  # where the packets go: the host's bind address (ANY: any of its addresses) or Asterisk's LAN address
    service: str
    purpose: str
    # Reached directly on the LAN address (ipvlan/macvlan): not published, the host's rules never see it.
    direct: bool = False
    sip: bool = False  # limited to network.sip_allow when that is set

    @property
    def ports(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


@dataclass(frozen=True)
class Forward:
    """A 1:1 (port-preserving) forward from the public address: `public_ip:ports` -> `target:ports`."""

    protocol: str
    ports: str
    public_ip: str
    target: str
    purpose: str


@dataclass(frozen=True)
class FirewallPlan:
    table: str
    subnet: str  # Docker DNATs published ports to container addresses in it
    sip_allow: tuple[str, ...]
    openings: tuple[Opening, ...]
    forwards: tuple[Forward, ...]

    @property
    def host_rules(self) -> tuple[Opening, ...]:
        """What the host's forward chain lets through: the published openings."""
        return tuple(opening for opening in self.openings if not opening.direct)


def table_name(project: str) -> str:
    return "omnivoip_" + re.sub(r"[^a-z0-9_]", "_", project)


@dataclass(frozen=True)
class Published:
    """The part of a published port the firewall needs (plan.PublishedPort has more)."""

    service: str
    host_ip: str
    start: int
    end: int
    protocol: str
    purpose: str


def firewall_plan(
    project: str,
    subnet: str,
    published: tuple[Published, ...],
    public_ip: str | None,
    sip_allow: tuple[str, ...],
    direct: tuple[Published, ...] = (),
    lan_address: str | None = None,
) -> FirewallPlan:
    """`published`: the ports: entries; `direct`: Asterisk's SIP and RTP reached on `lan_address` (LAN modes)."""
    openings = [
        Opening(port.protocol, port.start, port.end, port.host_ip, port.service, port.purpose, sip=port.purpose == "SIP")
        for port in published
        if port.host_ip != LOOPBACK  # the debug ports of network.expose_internal never leave the host
    ]
    if lan_address is not None:
        openings += [
            Opening(port.protocol, port.start, port.end, lan_address, port.service, port.purpose, direct=True, sip=port.purpose == "SIP")
            for port in direct
        ]
    forwards: list[Forward] = []
    if public_ip is not None:
        for opening in openings:
            target = opening.address if opening.address != ANY else "this host's private address"
            forwards.append(Forward(opening.protocol, opening.ports, public_ip, target, f"{opening.service}: {opening.purpose}"))
    return FirewallPlan(table_name(project), subnet, sip_allow, tuple(openings), tuple(forwards))
