"""Which service runs on which host of a multi-host profile (`[[hosts]]`), and who talks to whom.

A multi-host profile gives each host roles; a role is a fixed set of services
(catalog/services.py). Everything here is a constant or a pure function of the validated profile, so
capacity.py (ports per host), plan.py/cluster.py (per-host plans) and the
verify stage agree on one placement. docs/multi-host.md explains the choices.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from omnigen.catalog.services import ROLE_DESCRIPTIONS, ROLES, SINGLE_HOST_ROLES, client_needs, listen_owner, listen_ports, role_services
from omnigen.catalog.services import service as catalog_entry
from omnigen.errors import KeyedProblem

if TYPE_CHECKING:
    from omnigen.inputs.profile import ClusterHost, Profile

# Host port each data service is published on when peers need it; clients on other hosts are
# told the data host's address and this port. The first voice host's Asterisk publishes AMI and ARI
# the same way for the backend and the dialer (the application controls one Asterisk).
# The same port as on the compose network (the catalog's listen ports), so a client's port never depends on where it runs.
PEER_PORTS: dict[str, int] = {key: listen_ports()[key] for key in ("postgresql", "redis", "minio", "asterisk-ami", "asterisk-http")}


def peer_service(key: str) -> str:
    """The compose service behind a PEER_PORTS key (asterisk-ami -> asterisk)."""
    return listen_owner(key)

# Asterisk's per-host values: in stack.yml each Asterisk service carries them as literals (they
# differ per voice host), so the stack's shared .env does not hold them.
PER_VOICE_HOST_ENV_KEYS = ("ACD_HOSTNAME", "ACD_RTP_PORT_MAX", "ACD_RTP_PORT_MIN", "ACD_SIP_PORT", "EXTERNAL_IP")

# Swarm node labels (label-nodes.sh sets them, stack.yml constrains on them). One key per role and
# per host, each "true": a label key holds one value, and one node may hold several roles or hosts.
LABEL_PREFIX = "omnivoip"
# Swarm service names are DNS labels: stack name + "_" + service name must fit in 63 characters.
MAX_SWARM_SERVICE_NAME = 63


def role_label(role: str) -> str:
    return f"{LABEL_PREFIX}.role.{role}"


def host_label(name: str) -> str:
    return f"{LABEL_PREFIX}.host.{name}"


def asterisk_service(host_name: str) -> str:
    """The Asterisk service of a voice host in stack.yml (per-host bundles call it `asterisk`)."""
    return f"asterisk-{host_name}"


def services_of(roles: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({service for role in roles for service in role_services(role)}))


def host_index(profile: Profile, name: str) -> int:
    return next(index for index, host in enumerate(profile.hosts) if host.name == name)


def hosts_with(profile: Profile, role: str) -> tuple[ClusterHost, ...]:
    return tuple(host for host in profile.hosts if role in host.roles)


def peer_published(profile: Profile, host: ClusterHost) -> tuple[str, ...]:
    """The PEER_PORTS this host publishes on its private address because a client runs elsewhere:
    the data services on the data host, AMI and ARI on the first voice host."""
    remote_clients = [service for other in profile.hosts if other.name != host.name for service in services_of(other.roles)]
    needed = {need for client in remote_clients for need in client_needs(client)}
    return tuple(key for key in PEER_PORTS if peer_service(key) in needed and peer_holder(profile, key).name == host.name)


def peer_holder(profile: Profile, key: str) -> ClusterHost:
    """The host that serves a PEER_PORTS key to the others: the first host with its service's role (the
    application controls one Asterisk: the first voice host's)."""
    role = catalog_entry(peer_service(key)).role
    assert role is not None, f"{key} belongs to no role"
    return hosts_with(profile, role)[0]


def remote_asterisk_clients(profile: Profile, host: ClusterHost) -> tuple[str, ...]:
    """Addresses of the other hosts whose services log in to this host's Asterisk (its manager.conf permits them)."""
    if host.name != hosts_with(profile, "voice")[0].name:
        return ()
    return tuple(
        str(other.address)
        for other in profile.hosts
        if other.name != host.name and any("asterisk" in client_needs(service) for service in services_of(other.roles))
    )


def advertised(host: ClusterHost) -> ipaddress.IPv4Address:
    """What a voice host puts in SIP/SDP and what browsers reach on the edge host: its public address, else its own."""
    return host.public_ip or host.address


def placement_problems(profile: Profile) -> Iterator[KeyedProblem]:
    """Why the hosts cannot carry the deployment, each message keyed by the profile key to change."""
    hosts = profile.hosts
    seen_names: dict[str, int] = {}
    seen_addresses: dict[ipaddress.IPv4Address, int] = {}
    for index, host in enumerate(hosts):
        if host.name in seen_names:
            yield KeyedProblem(f"hosts.{index}.name", f"{host.name!r} is already the name of hosts.{seen_names[host.name]}; give every host its own name")
        seen_names.setdefault(host.name, index)
        if host.address in seen_addresses:
            yield KeyedProblem(
                f"hosts.{index}.address",
                f"{host.address} is already the address of hosts.{seen_addresses[host.address]}; every host "
                "needs its own private address (Swarm tells the nodes apart by it, and each host publishes its services there)"
            )
        seen_addresses.setdefault(host.address, index)
        if host.address in profile.network.subnet:
            yield KeyedProblem(
                f"hosts.{index}.address",
                f"{host.address} is inside network.subnet {profile.network.subnet}, the containers' network "
                "on every host; move network.subnet to a private range the hosts do not use"
            )
        longest = len(profile.project.name) + 1 + len(asterisk_service(host.name))
        if "voice" in host.roles and longest > MAX_SWARM_SERVICE_NAME:
            yield KeyedProblem(
                f"hosts.{index}.name",
                f"the Swarm service {profile.project.name}_{asterisk_service(host.name)} would be {longest} "
                f"characters, over Swarm's {MAX_SWARM_SERVICE_NAME} (got {host.name!r}); use a shorter host or project name"
            )
    for role in ROLES:
        holders = hosts_with(profile, role)
        if not holders:
            yield KeyedProblem(
                "hosts",
                f"no host has the role {role!r} ({ROLE_DESCRIPTIONS[role]}); add {role!r} to the roles of one host "
                f"(roles: {', '.join(ROLES)})"
            )
        elif role in SINGLE_HOST_ROLES and len(holders) > 1:
            second = host_index(profile, holders[1].name)
            yield KeyedProblem(
                f"hosts.{second}.roles",
                f"the role {role!r} is on {', '.join(host.name for host in holders)}, but it runs once "
                f"({ROLE_DESCRIPTIONS[role]}); keep it on one host"
            )
    web, edge = hosts_with(profile, "web"), hosts_with(profile, "edge")
    if len(web) == 1 and len(edge) == 1 and web[0].name != edge[0].name:
        index = host_index(profile, edge[0].name)
        yield KeyedProblem(
            f"hosts.{index}.roles",
            f"the role 'edge' (nginx) is on {edge[0].name} but 'web' is on {web[0].name}; nginx serves the "
            "app's static and media files from volumes it shares with django-app and celery-worker, and a Docker volume does "
            "not span hosts; give 'edge' to the host with 'web'"
        )
    voice = hosts_with(profile, "voice")
    total = sum(host.calls or 0 for host in voice)
    if voice and total != profile.capacity.concurrent_calls:
        shares = " + ".join(f"{host.name} {host.calls}" for host in voice)
        yield KeyedProblem(
            "hosts",
            f"the voice hosts carry {shares} = {total} calls, but capacity.concurrent_calls is "
            f"{profile.capacity.concurrent_calls}; make the voice hosts' calls add up to capacity.concurrent_calls"
        )
