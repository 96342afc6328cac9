"""Forbidden settings in the spellings users write them in, and how to plant one
into a generated compose file (for the mutation tests in test_rules_policy.py).

Every spelling is also run through the real Compose binary, which must read it
as the hazard (test_spellings_are_what_compose_reads), so the catalogue holds
only spellings Compose really accepts, never ones we invented.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ServiceJson = dict[str, Any]


@dataclass(frozen=True)
class Spelling:
    rule: str
    attribute: str
    lines: tuple[str, ...]  # the setting as written under a service, indented relative to the service's keys
    hazard: int  # index in `lines` of the line the finding must point at
    reads_as: Callable[[ServiceJson], bool]  # on `docker compose config --format json`: Compose sees the hazard
    items: tuple[str, ...] = ()  # the same hazard as entries appended to an existing list/mapping (hazard at items[0])
    internal_only: bool = False  # only a hazard on databases/Redis/MinIO/Gearman

    @property
    def name(self) -> str:
        return f"{self.rule}:{' / '.join(line.strip() for line in self.lines)}"


def _has_cap(name: str) -> Callable[[ServiceJson], bool]:
    return lambda svc: name in [cap.upper() for cap in svc.get("cap_add", [])]


def _option(name: str) -> Callable[[ServiceJson], bool]:
    return lambda svc: name in svc.get("security_opt", [])


def _mounts(source: str) -> Callable[[ServiceJson], bool]:
    return lambda svc: any(volume.get("source") == source for volume in svc.get("volumes", []))


def _publishes(target: int, unbound: bool = True) -> Callable[[ServiceJson], bool]:
    return lambda svc: any(port["target"] == target and (not unbound or not port.get("host_ip")) for port in svc.get("ports", []))


def _namespace(key: str, value: str) -> Callable[[ServiceJson], bool]:
    return lambda svc: svc.get(key) == value


def _image_is(expected: str) -> Callable[[ServiceJson], bool]:
    return lambda svc: svc.get("image") == expected


def _privileged(svc: ServiceJson) -> bool:
    return svc.get("privileged") is True


def _devices(svc: ServiceJson) -> bool:
    return bool(svc.get("devices") or svc.get("device_cgroup_rules"))


def _healthcheck_off(svc: ServiceJson) -> bool:
    check = svc.get("healthcheck") or {}
    return check.get("disable") is True or check.get("test") == ["NONE"]


SPELLINGS: tuple[Spelling, ...] = (
    # privileged (OV101): YAML 1.2 booleans and the strings Compose's boolean fields accept
    *(
        Spelling("OV101", "privileged", (f"privileged: {value}",), 0, _privileged)
        for value in ("true", "yes", "on", "True", "TRUE", '"true"', "'yes'", '"on"', "y")
    ),
    # cap_add (OV102)
    Spelling("OV102", "cap_add", ("cap_add:", "  - NET_ADMIN"), 1, _has_cap("NET_ADMIN")),
    Spelling("OV102", "cap_add", ("cap_add: [SYS_ADMIN]",), 0, _has_cap("SYS_ADMIN")),
    Spelling("OV102", "cap_add", ('cap_add: ["NET_RAW", "SYS_TIME"]',), 0, _has_cap("SYS_TIME")),
    Spelling("OV102", "cap_add", ("cap_add:", "  - 'sys_ptrace'"), 1, _has_cap("SYS_PTRACE")),
    # sysctls (OV104): mapping and list, block and flow
    Spelling("OV104", "sysctls", ("sysctls:", "  net.core.somaxconn: 1024"), 1, lambda svc: bool(svc.get("sysctls"))),
    Spelling("OV104", "sysctls", ("sysctls:", "  - net.ipv4.ip_forward=1"), 1, lambda svc: bool(svc.get("sysctls"))),
    Spelling("OV104", "sysctls", ("sysctls: {net.ipv4.tcp_syncookies: 0}",), 0, lambda svc: bool(svc.get("sysctls"))),
    Spelling("OV104", "sysctls", ('sysctls: ["net.ipv4.ip_unprivileged_port_start=0"]',), 0, lambda svc: bool(svc.get("sysctls"))),
    # host or shared namespaces (OV105)
    Spelling("OV105", "network_mode", ("network_mode: host",), 0, _namespace("network_mode", "host")),
    Spelling("OV105", "network_mode", ('network_mode: "host"',), 0, _namespace("network_mode", "host")),
    Spelling("OV105", "network_mode", ("network_mode: 'host'",), 0, _namespace("network_mode", "host")),
    Spelling("OV105", "network_mode", ('network_mode: "container:edge-proxy"',), 0, _namespace("network_mode", "container:edge-proxy")),
    Spelling("OV105", "pid", ("pid: host",), 0, _namespace("pid", "host")),
    Spelling("OV105", "pid", ('pid: "container:edge-proxy"',), 0, _namespace("pid", "container:edge-proxy")),
    Spelling("OV105", "ipc", ("ipc: host",), 0, _namespace("ipc", "host")),
    Spelling("OV105", "ipc", ("ipc: 'container:edge-proxy'",), 0, _namespace("ipc", "container:edge-proxy")),
    Spelling("OV105", "uts", ('uts: "host"',), 0, _namespace("uts", "host")),
    Spelling("OV105", "userns_mode", ("userns_mode: host",), 0, _namespace("userns_mode", "host")),
    Spelling("OV105", "userns_mode", ('userns_mode: "host"',), 0, _namespace("userns_mode", "host")),
    Spelling("OV105", "userns_mode", ("userns_mode: 'host'",), 0, _namespace("userns_mode", "host")),
    Spelling("OV105", "cgroup", ("cgroup: host",), 0, _namespace("cgroup", "host")),
    # security_opt that removes confinement (OV106) or turns no-new-privileges off (OV114)
    *(
        Spelling("OV106", "security_opt", ("security_opt:", f"  - {option}"), 1, _option(option.strip("\"'")), items=(f"- {option}",))
        for option in (
            "seccomp=unconfined",
            '"seccomp:unconfined"',
            "apparmor=unconfined",
            "'apparmor:unconfined'",
            "label=disable",
            '"label:disable"',
            "label=type:spc_t",
            "systempaths=unconfined",
        )
    ),
    Spelling("OV106", "security_opt", ('security_opt: ["seccomp=unconfined"]',), 0, _option("seccomp=unconfined")),
    Spelling("OV114", "security_opt", ("security_opt:", '  - "no-new-privileges:false"'), 1, _option("no-new-privileges:false")),
    # devices (OV107)
    Spelling("OV107", "devices", ("devices:", "  - /dev/snd:/dev/snd"), 1, _devices, items=("- /dev/snd:/dev/snd",)),
    Spelling("OV107", "devices", ('devices: ["/dev/fuse"]',), 0, _devices),
    Spelling("OV107", "devices", ("devices:", "  - source: /dev/kvm", "    target: /dev/kvm", "    permissions: rwm"), 1, _devices),
    Spelling("OV107", "device_cgroup_rules", ("device_cgroup_rules:", '  - "c *:* rmw"'), 1, _devices),
    # sensitive host paths and the runtime socket (OV108)
    Spelling(
        "OV108",
        "volumes",
        ("volumes:", "  - /var/run/docker.sock:/var/run/docker.sock"),
        1,
        _mounts("/var/run/docker.sock"),
        items=("- /var/run/docker.sock:/var/run/docker.sock",),
    ),
    Spelling("OV108", "volumes", ("volumes:", '  - "/etc:/host-etc:ro"'), 1, _mounts("/etc"), items=('- "/etc:/host-etc:ro"',)),
    Spelling("OV108", "volumes", ("volumes:", "  - /:/host:ro"), 1, _mounts("/"), items=("- /:/host:ro",)),
    Spelling("OV108", "volumes", ("volumes:", "  - '/proc:/host-proc'"), 1, _mounts("/proc"), items=("- '/proc:/host-proc'",)),
    Spelling(
        "OV108",
        "volumes",
        ("volumes:", "  - type: bind", "    source: /sys", "    target: /host-sys"),
        1,
        _mounts("/sys"),
        items=("- type: bind", "  source: /sys", "  target: /host-sys"),
    ),
    Spelling("OV108", "volumes", ('volumes: ["/dev:/host-dev"]',), 0, _mounts("/dev")),
    # ports on every interface (OV109)
    Spelling("OV109", "ports", ("ports:", '  - "18080:80"'), 1, _publishes(80), items=('- "18080:80"',)),
    Spelling("OV109", "ports", ("ports:", "  - 18081:81"), 1, _publishes(81), items=("- 18081:81",)),
    Spelling("OV109", "ports", ("ports:", '  - "82"'), 1, _publishes(82), items=('- "82"',)),
    Spelling("OV109", "ports", ("ports:", "  - target: 83", '    published: "18083"'), 1, _publishes(83), items=("- target: 83", '  published: "18083"')),
    Spelling("OV109", "ports", ('ports: ["18084:84"]',), 0, _publishes(84)),
    # internal services published (OV110)
    Spelling("OV110", "ports", ("ports:", '  - "15432:5432"'), 1, _publishes(5432), items=('- "15432:5432"',), internal_only=True),
    Spelling("OV110", "ports", ("ports:", '  - "0.0.0.0:16379:6379"'), 1, _publishes(6379, unbound=False), items=('- "0.0.0.0:16379:6379"',), internal_only=True),
    Spelling("OV110", "ports", ("ports:", "  - target: 9000", "    published: 19000"), 1, _publishes(9000), internal_only=True),
    # images without a pinned release (OV111)
    *(
        Spelling("OV111", "image", (f"image: {image}",), 0, _image_is(image.strip("\"'")))
        for image in ("nginx", '"nginx:latest"', "'redis:stable'", "nginx:alpine", '"registry.example.com:5000/team/app"')
    ),
    # healthchecks turned off (OV112)
    Spelling("OV112", "healthcheck", ("healthcheck:", "  disable: true"), 1, _healthcheck_off, items=("disable: true",)),
    Spelling("OV112", "healthcheck", ("healthcheck: {disable: yes}",), 0, _healthcheck_off),
    Spelling("OV112", "healthcheck", ("healthcheck:", '  test: ["NONE"]'), 1, _healthcheck_off),
    Spelling("OV112", "healthcheck", ("healthcheck:", "  test:", "    - NONE"), 2, _healthcheck_off),
)


@dataclass(frozen=True)
class Planted:
    files: dict[str, str]  # relative path -> text (the compose file, maybe an override file)
    file: str  # where the finding must be
    line: int


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _service_block(lines: list[str], service: str) -> tuple[int, int, int]:
    """(index of `  service:`, end of its block, indentation of its keys) in a block-style compose file."""
    top = lines.index("services:")
    service_indent = next(_indent(line) for line in lines[top + 1 :] if line.strip() and not line.lstrip().startswith("#"))
    start = next(i for i, line in enumerate(lines) if i > top and line == " " * service_indent + f"{service}:")
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > service_indent):
        end += 1
    key_indent = _indent(lines[start + 1])
    return start, end, key_indent


def _attribute_line(lines: list[str], start: int, end: int, key_indent: int, attribute: str) -> int | None:
    for index in range(start + 1, end):
        match = _KEY.match(lines[index])
        if match and len(match.group("indent")) == key_indent and match.group("key") == attribute:
            return index
    return None


def plant(compose: str, service: str, spelling: Spelling, placement: str) -> Planted:
    """Write `spelling` into `service`, in the compose file itself or in an override file.

    In the compose file it goes under the service key when the service does not
    have the attribute yet; otherwise its `items` are appended to the existing
    list or mapping (or a one-line spelling replaces the attribute's line). When
    neither fits, the setting goes to docker-compose.override.yml, which Compose
    merges into the file.
    """
    lines = compose.split("\n")
    start, end, key_indent = _service_block(lines, service)
    existing = _attribute_line(lines, start, end, key_indent, spelling.attribute)
    pad = " " * key_indent
    if placement == "main" and existing is None:
        lines[start + 1 : start + 1] = [pad + line for line in spelling.lines]
        return Planted({"docker-compose.yml": "\n".join(lines)}, "docker-compose.yml", start + 2 + spelling.hazard)
    if placement == "main" and existing is not None and spelling.items and existing + 1 < end:
        child_pad = " " * _indent(lines[existing + 1])
        lines[existing + 1 : existing + 1] = [child_pad + line for line in spelling.items]
        return Planted({"docker-compose.yml": "\n".join(lines)}, "docker-compose.yml", existing + 2)
    if placement == "main" and existing is not None and len(spelling.lines) == 1 and _indent(lines[existing + 1]) <= key_indent:
        lines[existing] = pad + spelling.lines[0]
        return Planted({"docker-compose.yml": "\n".join(lines)}, "docker-compose.yml", existing + 1)
    override = "\n".join(["services:", f"  {service}:", *("    " + line for line in spelling.lines)]) + "\n"
    return Planted({"docker-compose.yml": compose, "docker-compose.override.yml": override}, "docker-compose.override.yml", 3 + spelling.hazard)
