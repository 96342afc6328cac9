"""Addresses on the compose network.

Services that a config names by IP (Asterisk, Kamailio, rtpengine) get fixed host numbers
in the lower half of the subnet; Docker hands every other container an address from the
upper half (ipam ip_range), so a fixed address can never already be taken when its
container starts.
"""

from __future__ import annotations

import ipaddress
import itertools

from omnigen.catalog.services import catalog, dynamic_address_services


def dynamic_address_range(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """The subnet's upper half, where Docker assigns addresses."""
    return next(itertools.islice(subnet.subnets(prefixlen_diff=1), 1, None))


def dynamic_addresses_needed(celery_replicas: int, dialer_replicas: int) -> int:
    """Containers with assigned addresses: one per service, each worker replica instead of its service's one."""
    replicas = {"celery": celery_replicas, "dialer": dialer_replicas}
    entries = {entry.name: entry for entry in catalog()}
    return sum(replicas[entry.replicas] if entry.replicas else 1 for entry in map(entries.__getitem__, dynamic_address_services()))


def dynamic_addresses_available(subnet: ipaddress.IPv4Network) -> int:
    return dynamic_address_range(subnet).num_addresses - 1  # its last address is the subnet's broadcast
