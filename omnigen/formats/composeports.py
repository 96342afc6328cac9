"""Compose `ports:` entries in every spelling, normalised.

Short syntax: `80`, `"8080:80"`, `"127.0.0.1:8080:80"`, `"10000-10100:10000-10100/udp"`,
`"[::1]:80:80"`, `"127.0.0.1::80"`; long syntax: `{target, published, host_ip, protocol}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SHORT = re.compile(
    r"^(?:(?P<ip>\[[^\]]+\]|[0-9.]+|[0-9a-fA-F:]+?):)??"
    r"(?:(?P<host>\d+(?:-\d+)?)?:)?"
    r"(?P<container>\d+(?:-\d+)?)"
    r"(?:/(?P<proto>tcp|udp|sctp|TCP|UDP|SCTP))?$"
)


@dataclass(frozen=True)
class PortSpec:
    host_ip: str | None
    host_start: int | None
    host_end: int | None
    container_start: int
    container_end: int
    protocol: str
    raw: str

    def describe(self) -> str:
        """The mapping in short syntax, whatever syntax it was written in."""
        container = _range_text(self.container_start, self.container_end)
        host = _range_text(self.host_start, self.host_end) if self.host_start is not None else ""
        address = f"[{self.host_ip}]" if self.host_ip and ":" in self.host_ip else self.host_ip or ""
        text = f"{address}:{host}:{container}" if address else f"{host}:{container}" if host else container
        return f"{text}/{self.protocol}"


def _range_text(start: int | None, end: int | None) -> str:
    return f"{start}-{end}" if end is not None and end != start else str(start)


def _span(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return int(start), int(end or start)


def parse_port(entry: Any) -> PortSpec | None:
    if isinstance(entry, int) and not isinstance(entry, bool):
        return PortSpec(None, None, None, entry, entry, "tcp", str(entry))
    if isinstance(entry, str):
        match = _SHORT.match(entry.strip())
        if not match:
            return None
        ip = match.group("ip")
        if ip and ip.startswith("["):
            ip = ip[1:-1]
        host = match.group("host")
        host_start, host_end = _span(host) if host else (None, None)
        container_start, container_end = _span(match.group("container"))
        return PortSpec(ip or None, host_start, host_end, container_start, container_end, (match.group("proto") or "tcp").lower(), entry)
    if isinstance(entry, dict):
        target = entry.get("target")
        if target is None:
            return None
        container_start, container_end = _span(str(target))
        published = entry.get("published")
        host_start, host_end = _span(str(published)) if published not in (None, "") else (None, None)
        ip = entry.get("host_ip")
        return PortSpec(
            str(ip).strip("[]") if ip else None,
            host_start,
            host_end,
            container_start,
            container_end,
            str(entry.get("protocol") or "tcp").lower(),
            str(entry),
        )
    return None
