"""Policy rules: settings no OmniVoIP service should carry, on any host.

References: CIS Docker Benchmark v1.6 section 5 and the KICS Docker Compose
queries (DOMAIN.md section 8).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omnigen.deployment import Deployment
from omnigen.formats.composeports import parse_port
from omnigen.rules import Hit, RuleContext, rule

SENSITIVE_PATHS = ("/", "/etc", "/proc", "/sys", "/dev", "/boot", "/usr", "/lib", "/lib64", "/var/run", "/run", "/root")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
INTERNAL_SERVICE_HINTS = ("postgres", "redis", "minio", "gearman", "mysql", "mariadb", "mongo", "memcached")
NAMESPACE_KEYS = ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup")


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "on", "1", "y"}
    return bool(value) if isinstance(value, int) else False


def _services(deployment: Deployment) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from deployment.services.items()


def _at(deployment: Deployment, *path: str | int) -> int | None:
    return deployment.line("services", *path)


@rule("OV101", "privileged", "error", "A privileged container is root on the host and breaks on unprivileged LXC and rootless hosts.", "CIS 5.5; KICS Privileged Containers Enabled")
def privileged(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        if "privileged" in service and _truthy(service["privileged"]):
            yield Hit(deployment.compose_path, _at(deployment, name, "privileged"), f"service {name!r} runs privileged", name)


@rule("OV102", "cap-add", "error", "Added capabilities widen the kernel attack surface; unprivileged hosts refuse many of them.", "CIS 5.4; KICS Container Capabilities Unrestricted")
def cap_add(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        caps = service.get("cap_add")
        if caps:
            listed = ", ".join(str(cap) for cap in caps) if isinstance(caps, list) else str(caps)
            yield Hit(deployment.compose_path, _at(deployment, name, "cap_add"), f"service {name!r} adds capabilities ({listed})", name)


@rule("OV103", "cap-drop-all", "warning", "Dropping ALL capabilities limits what a compromised process can do.", "CIS 5.4; KICS Container Capabilities Unrestricted")
def cap_drop_all(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        caps = service.get("cap_drop")
        values = [str(cap).upper() for cap in caps] if isinstance(caps, list) else [str(caps).upper()] if caps else []
        if "ALL" not in values:
            yield Hit(deployment.compose_path, _at(deployment, name), f"service {name!r} does not drop ALL capabilities (cap_drop: [\"ALL\"])", name)


@rule("OV104", "sysctls", "error", "Per-container sysctls fail on unprivileged LXC and rootless hosts and are rarely needed.", "CIS 5.x (host kernel settings); KICS Shared Host ... / sysctls")
def sysctls(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        if service.get("sysctls"):
            yield Hit(deployment.compose_path, _at(deployment, name, "sysctls"), f"service {name!r} sets sysctls", name)


@rule("OV105", "host-namespace", "error", "Sharing a host or another container's namespace removes isolation and breaks on unprivileged hosts.", "CIS 5.10, 5.16, 5.17, 5.21, 5.31; KICS Shared Host Network/IPC/PID/User Namespace")
def host_namespace(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        for key in NAMESPACE_KEYS:
            if key not in service:
                continue
            value = str(service[key]).strip().strip("\"'").lower()
            if value == "host" or value.startswith(("service:", "container:")):
                yield Hit(deployment.compose_path, _at(deployment, name, key), f"service {name!r} sets {key}: {service[key]}", name)


@rule("OV106", "security-opt-unconfined", "error", "Disabling seccomp, AppArmor or SELinux labels removes the default confinement.", "CIS 5.2, 5.22; KICS Seccomp Profile Is Disabled / AppArmor Disabled")
def security_opt(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        opts = service.get("security_opt")
        if not isinstance(opts, list):
            continue
        for index, opt in enumerate(opts):
            text = str(opt).replace("=", ":").replace(" ", "").lower()
            if text in {"seccomp:unconfined", "apparmor:unconfined", "label:disable", "label:type:spc_t", "systempaths:unconfined"}:
                yield Hit(deployment.compose_path, _at(deployment, name, "security_opt", index), f"service {name!r} sets security_opt {opt}", name)


@rule("OV107", "devices", "error", "Host devices inside a container bypass its isolation.", "CIS 5.18 (devices); KICS Docker Socket / Devices")
def devices(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        if service.get("devices") or service.get("device_cgroup_rules"):
            key = "devices" if service.get("devices") else "device_cgroup_rules"
            yield Hit(deployment.compose_path, _at(deployment, name, key), f"service {name!r} maps host devices", name)


def _volume_source(volume: Any) -> str | None:
    if isinstance(volume, str):
        parts = volume.split(":")
        return parts[0] if len(parts) >= 2 else None
    if isinstance(volume, dict) and volume.get("type", "bind") == "bind":
        source = volume.get("source")
        return str(source) if source is not None else None
    return None


@rule("OV108", "sensitive-mount", "error", "Mounting the Docker socket or host system paths gives the container the host.", "CIS 5.6, 5.32; KICS Docker Socket Mounted In Container / Sensitive Host Directory")
def sensitive_mount(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        volumes = service.get("volumes")
        if not isinstance(volumes, list):
            continue
        for index, volume in enumerate(volumes):
            source = _volume_source(volume)
            if source is None or not source.startswith("/"):
                continue
            normalised = "/" + source.strip("/")
            if normalised in DOCKER_SOCKETS or normalised.endswith("/docker.sock"):
                yield Hit(deployment.compose_path, _at(deployment, name, "volumes", index), f"service {name!r} mounts the Docker socket {source}", name)
            elif normalised in SENSITIVE_PATHS or any(normalised.startswith(path + "/") for path in SENSITIVE_PATHS if path not in {"/", "/var/run", "/run"}):
                yield Hit(deployment.compose_path, _at(deployment, name, "volumes", index), f"service {name!r} mounts the sensitive host path {source}", name)


def _is_internal(name: str, service: dict[str, Any]) -> bool:
    image = str(service.get("image", "")).lower()
    haystack = f"{name.lower()} {image}"
    return any(hint in haystack for hint in INTERNAL_SERVICE_HINTS)


@rule("OV109", "port-all-interfaces", "warning", "A port without a host address is published on every interface, IPv4 and IPv6, with two proxies per port.", "CIS 5.14; KICS Container Traffic Not Bound To Host Interface; dclint no-unbound-port-interfaces")
def port_all_interfaces(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        ports = service.get("ports")
        if not isinstance(ports, list):
            continue
        for index, entry in enumerate(ports):
            spec = parse_port(entry)
            if spec is not None and spec.host_ip is None:
                yield Hit(deployment.compose_path, _at(deployment, name, "ports", index), f"service {name!r} publishes {spec.raw} on all interfaces; name a host address", name)


@rule("OV110", "internal-service-published", "error", "Databases, Redis, MinIO and Gearman serve only the compose network; publishing them exposes credentials' last line of defence.", "CIS 5.9; KICS Container Traffic Not Bound To Host Interface")
def internal_published(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        ports = service.get("ports")
        if not isinstance(ports, list) or not _is_internal(name, service):
            continue
        for index, entry in enumerate(ports):
            spec = parse_port(entry)
            if spec is not None and spec.host_ip not in {"127.0.0.1", "::1", "localhost"}:
                yield Hit(deployment.compose_path, _at(deployment, name, "ports", index), f"internal service {name!r} is published to the host ({spec.raw}); remove the port or bind it to 127.0.0.1", name)


@rule("OV111", "image-tag", "warning", "An image without a pinned tag changes under you on the next pull.", "CIS 5.28; KICS Image Version Not Explicit; dclint service-image-require-explicit-tag")
def image_tag(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        image = service.get("image")
        if image is None:
            if "build" not in service:
                yield Hit(deployment.compose_path, _at(deployment, name), f"service {name!r} has neither image nor build", name)
            continue
        text = str(image)
        if "@sha256:" in text:
            continue
        tag = text.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            yield Hit(deployment.compose_path, _at(deployment, name, "image"), f"service {name!r} uses image {text!r} without a pinned tag", name)


@rule("OV112", "healthcheck", "warning", "Without a working healthcheck, depends_on cannot wait for readiness and failures go unseen.", "CIS 5.27; KICS Healthcheck Not Set")
def healthcheck(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        check = service.get("healthcheck")
        if not isinstance(check, dict) or _truthy(check.get("disable")) or check.get("test") in (None, [], ["NONE"], "NONE"):
            yield Hit(deployment.compose_path, _at(deployment, name), f"service {name!r} has no healthcheck", name)


def _limit(service: dict[str, Any], key: str, legacy: str) -> bool:
    if service.get(legacy) not in (None, ""):
        return True
    deploy = service.get("deploy")
    if isinstance(deploy, dict):
        resources = deploy.get("resources")
        if isinstance(resources, dict):
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits.get(key) not in (None, ""):
                return True
    return False


@rule("OV113", "resource-limits", "warning", "Without memory and pids limits one runaway service can take the whole host down.", "CIS 5.11, 5.12, 5.29; KICS Memory Not Limited / Pids Limit Not Set")
def resource_limits(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        missing = [label for key, legacy, label in (("memory", "mem_limit", "memory"), ("pids", "pids_limit", "pids")) if not _limit(service, key, legacy)]
        if missing:
            yield Hit(deployment.compose_path, _at(deployment, name), f"service {name!r} has no {' or '.join(missing)} limit", name)


@rule("OV114", "no-new-privileges", "warning", "no-new-privileges stops setuid binaries from regaining privileges.", "CIS 5.26; KICS No New Privileges Not Set")
def no_new_privileges(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        opts = service.get("security_opt")
        texts = [str(opt).replace("=", ":").replace(" ", "").lower() for opt in opts] if isinstance(opts, list) else []
        if not any(text in {"no-new-privileges", "no-new-privileges:true"} for text in texts):
            yield Hit(deployment.compose_path, _at(deployment, name), f"service {name!r} does not set no-new-privileges:true", name)
