"""Policy rules: settings no OmniVoIP service should carry, on any host.

Each rule reads the parsed, interpolated and merged compose data, so every
spelling reaches it the same way: quoted or not, `yes`/`true`/`"true"`, flow or
block lists, short or long syntax, set in an override file or via `extends`.
References: CIS Docker Benchmark v1.6 section 5 and the KICS Docker Compose
queries (DOMAIN.md section 8).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterator
from typing import Any

from omnigen.catalog.application import ROOT_MASTER_CAPABILITIES
from omnigen.formats.composeports import PortSpec, parse_port
from omnigen.formats.redact import looks_like_credential_name
from omnigen.verify.deployment import Deployment, Mount, truthy
from omnigen.verify.rules.registry import Hit, RuleContext, rule

# CIS 5.6 names /, /boot, /dev, /etc, /lib, /proc, /sys, /usr; the rest hold the same kind of host state.
SENSITIVE_TREES = ("/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sys", "/usr", "/bin", "/sbin", "/root", "/var/lib/docker")
SENSITIVE_EXACT = ("/", "/var", "/var/run", "/run", "/var/lib", "/home")
# Read-only time-zone data is the one common, harmless mount from /etc and /usr.
HARMLESS_READ_ONLY = ("/etc/localtime", "/etc/timezone", "/usr/share/zoneinfo")
RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "podman.sock", "crio.sock", "dockershim.sock")
INTERNAL_SERVICE_HINTS = (
    "postgres", "redis", "minio", "gearman", "mysql", "mariadb", "mongo", "memcached", "rabbitmq", "elasticsearch", "etcd", "zookeeper",
)  # fmt: skip
NAMESPACE_KEYS = ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup")
# Tags that name a moving target rather than a release (dclint's list plus common distribution aliases).
FLOATING_TAGS = frozenset(
    {"latest", "stable", "edge", "test", "nightly", "dev", "develop", "beta", "canary", "lts", "mainline", "main", "master", "alpine", "slim", "current", "rolling"}
)
UNCONFINED_SECURITY_OPTS = {
    "seccomp:unconfined": "turns off the seccomp filter",
    "apparmor:unconfined": "turns off the AppArmor profile",
    "label:disable": "turns off SELinux labels",
    "label:type:spc_t": "runs as an SELinux super-privileged container",
    "label:type:unconfined_t": "runs SELinux-unconfined",
    "systempaths:unconfined": "unmasks /proc and /sys paths",
}
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# RFC 1918: where hosts of one deployment reach each other's data services.
PRIVATE_BLOCKS = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# The top-level key a multi-host bundle declares its host with (omnigen's per-host bundles write it).
HOST_DECLARATION = "x-omnivoip-host"


def _services(deployment: Deployment) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from deployment.services.items()


def _normalise_opt(option: Any) -> str:
    """`seccomp=unconfined`, `seccomp:unconfined`, ` Seccomp = unconfined` -> `seccomp:unconfined`."""
    text = str(option).strip().lower().replace(" ", "")
    key, separator, value = text.partition("=") if "=" in text.split(":", 1)[0] else text.partition(":")
    return f"{key}:{value}" if separator else key


def _nested(mapping: dict[str, Any], *keys: str) -> Any:
    """mapping[k1][k2]... or None when any level is missing or not a mapping."""
    value: Any = mapping
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None or value == "":
        return []
    return [value]


@rule("OV101", "privileged", "error", "A privileged container is root on the host and breaks on unprivileged LXC and rootless hosts.", "CIS 5.5; KICS Privileged Containers Enabled")
def privileged(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        if truthy(service.get("privileged")):
            yield Hit(deployment.where("services", name, "privileged"), f"service {name!r} runs privileged", name)


@rule(
    "OV102",
    "cap-add",
    "error",
    "Added capabilities widen the kernel attack surface; unprivileged hosts refuse many of them. One exception: after "
    "cap_drop ALL, a master process that starts as root (nginx:alpine) may get back CHOWN, SETGID and SETUID to "
    "prepare its folders and drop to its worker user; nothing else.",
    "CIS 5.3, 5.4; KICS Container Capabilities Unrestricted; docs/application.md (frontend)",
)
def cap_add(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        caps = service.get("cap_add")
        drops_all = bool({"ALL", "CAP_ALL"} & {str(cap).strip().upper() for cap in _list(service.get("cap_drop"))})
        for index, cap in enumerate(_list(caps)):
            shown = str(cap).strip().upper().removeprefix("CAP_")
            if drops_all and shown in ROOT_MASTER_CAPABILITIES:
                continue
            location = deployment.where("services", name, "cap_add", index) if isinstance(caps, list) else deployment.where("services", name, "cap_add")
            why = "" if not drops_all else f" (after cap_drop ALL only {', '.join(ROOT_MASTER_CAPABILITIES)} may come back, for a master that starts as root)"
            yield Hit(location, f"service {name!r} adds capability {shown}{why}", name)


@rule("OV103", "cap-drop-all", "warning", "Dropping ALL capabilities limits what a compromised process can do.", "CIS 5.4; KICS Container Capabilities Unrestricted")
def cap_drop_all(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        values = [str(cap).strip().upper() for cap in _list(service.get("cap_drop"))]
        if "ALL" not in values and "CAP_ALL" not in values:
            yield Hit(deployment.where("services", name), f"service {name!r} does not drop ALL capabilities (cap_drop: [\"ALL\"])", name)


@rule("OV104", "sysctls", "error", "Per-container sysctls fail on unprivileged LXC and rootless hosts and change kernel behaviour for the container.", "CIS 5.x (host kernel settings); KICS Container Sysctls Set")
def sysctls(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        settings = service.get("sysctls")
        if isinstance(settings, dict):
            for key, value in settings.items():
                shown = key if value is None else f"{key}={value}"
                yield Hit(deployment.where("services", name, "sysctls", key), f"service {name!r} sets sysctl {shown}", name)
        elif settings:
            yield Hit(deployment.where("services", name, "sysctls"), f"service {name!r} sets sysctls", name)


@rule("OV105", "host-namespace", "error", "Sharing a host or another container's namespace removes isolation and breaks on unprivileged hosts.", "CIS 5.10, 5.16, 5.17, 5.21, 5.31; KICS Shared Host Network/IPC/PID/User Namespace")
def host_namespace(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        for key in NAMESPACE_KEYS:
            if key not in service or service[key] is None:
                continue
            value = str(service[key]).strip().strip("\"'").lower()
            if value == "host" or value.startswith(("service:", "container:")):
                shared = "the host's" if value == "host" else f"{value.split(':', 1)[0]} {value.split(':', 1)[1]!r}'s"
                yield Hit(deployment.where("services", name, key), f"service {name!r} sets {key}: {service[key]} (shares {shared} namespace)", name)


@rule("OV106", "security-opt-unconfined", "error", "Disabling seccomp, AppArmor or SELinux labels removes the default confinement.", "CIS 5.2, 5.3, 5.22; KICS Seccomp Profile Is Disabled / AppArmor Profile Disabled")
def security_opt(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        options = service.get("security_opt")
        for index, option in enumerate(_list(options)):
            normalised = _normalise_opt(option)
            if normalised in UNCONFINED_SECURITY_OPTS:
                location = deployment.where("services", name, "security_opt", index)
                yield Hit(location, f"service {name!r} sets security_opt {option!s}: it {UNCONFINED_SECURITY_OPTS[normalised]}", name)


@rule("OV107", "devices", "error", "Host devices inside a container bypass its isolation.", "CIS 5.18 (devices); KICS Container Devices Exposed")
def devices(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        for key in ("devices", "device_cgroup_rules"):
            for index, entry in enumerate(_list(service.get(key))):
                shown = entry.get("source", entry) if isinstance(entry, dict) else entry
                yield Hit(deployment.where("services", name, key, index), f"service {name!r} maps host devices ({key}: {shown})", name)
        if service.get("gpus"):
            yield Hit(deployment.where("services", name, "gpus"), f"service {name!r} maps host GPUs (gpus)", name)
        reservations = _nested(service, "deploy", "resources", "reservations")
        if isinstance(reservations, dict):
            for index, _entry in enumerate(_list(reservations.get("devices"))):
                location = deployment.where("services", name, "deploy", "resources", "reservations", "devices", index)
                yield Hit(location, f"service {name!r} reserves host devices (deploy.resources.reservations.devices)", name)


def _sensitive(path: str, read_only: bool) -> str | None:
    """Why a host path must not be mounted, or None."""
    normalised = posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else path
    if posixpath.basename(normalised) in RUNTIME_SOCKETS:
        return "the container runtime socket (root on the host)"
    if read_only and any(normalised == safe or normalised.startswith(safe + "/") for safe in HARMLESS_READ_ONLY):
        return None
    if normalised in SENSITIVE_EXACT:
        return "a host system folder"
    if any(normalised == tree or normalised.startswith(tree + "/") for tree in SENSITIVE_TREES):
        return "a host system path"
    return None


def _the_deployments_own(mount: Mount, project_dir: str) -> bool:
    """A relative source that stays in the deployment's folder, or in the repository folder just above it
    (the v2 layout's prod-env/../configs), is the operator's own file wherever the deployment lives:
    /root/site is a common place, and its ./certs is no host system path. The folder above does not
    count when it is itself a system folder (/root, /etc, /home): ../.ssh from /root/site is flagged."""
    if mount.source.startswith(("/", "~")) or not project_dir.startswith("/"):
        return False
    if project_dir in SENSITIVE_EXACT or project_dir in SENSITIVE_TREES:
        return False  # a deployment kept in /root or /etc itself: everything it mounts is judged
    above = posixpath.dirname(project_dir)
    system_folder = above in SENSITIVE_EXACT or above in SENSITIVE_TREES
    anchor = project_dir if system_folder else above
    return mount.host_path == anchor or mount.host_path.startswith(anchor.rstrip("/") + "/")


@rule("OV108", "sensitive-mount", "error", "Mounting the container runtime socket or host system paths gives the container the host.", "CIS 5.6, 5.32; KICS Docker Socket Mounted In Container / Volume Has Sensitive Host Directory")
def sensitive_mount(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name in deployment.services:
        for mount in deployment.mounts(name):
            if mount.kind == "config":
                continue
            host = mount.host_path if mount.host_path.startswith("/") else mount.source
            if not host.startswith("/") or _the_deployments_own(mount, deployment.project_dir):
                continue
            why = _sensitive(host, mount.read_only)
            if why:
                via = f" through named volume {mount.source!r}" if mount.kind == "volume-bind" else ""
                shown = mount.source if mount.kind == "volume-bind" or mount.source == host else f"{mount.source} ({host})"
                yield Hit(mount.location, f"service {name!r} mounts {shown}{via}, {why}", name)


def _ports(service: dict[str, Any]) -> Iterator[tuple[int, PortSpec]]:
    for index, entry in enumerate(_list(service.get("ports"))):
        spec = parse_port(entry)
        if spec is not None:
            yield index, spec


def is_internal(name: str, service: dict[str, Any]) -> bool:
    image = str(service.get("image") or "").lower()
    haystack = f"{name.lower()} {image}"
    return any(hint in haystack for hint in INTERNAL_SERVICE_HINTS)


def _publishing_mode(service: dict[str, Any], index: int) -> str:
    """Swarm publishing mode of a port: long syntax may say `mode: host`; anything else goes through the routing mesh."""
    entry = _list(service.get("ports"))[index]
    return str(entry.get("mode") or "ingress") if isinstance(entry, dict) else "ingress"


@rule("OV109", "port-all-interfaces", "warning", "A port without a host address is published on every interface, IPv4 and IPv6, with two proxies per port; in a Swarm stack, a routing-mesh port is published on every node.", "CIS 5.14; KICS Container Traffic Not Bound To Host Interface; dclint no-unbound-port-interfaces")
def port_all_interfaces(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        for index, spec in _ports(service):
            if deployment.orchestrator == "swarm":
                # A stack cannot name a host address. `mode: host` publishes on the node the task is pinned to
                # (restrict it with that host's firewall); the routing mesh publishes on every node of the swarm.
                if _publishing_mode(service, index) != "host":
                    yield Hit(
                        deployment.where("services", name, "ports", index),
                        f"service {name!r} publishes {spec.describe()} through the routing mesh: every node of the swarm answers "
                        "on it, on every interface; use long syntax with mode: host and pin the service with placement constraints",
                        name,
                    )
            elif spec.host_ip is None:
                yield Hit(deployment.where("services", name, "ports", index), f"service {name!r} publishes {spec.describe()} on all interfaces; name a host address", name)


def declared_private_address(deployment: Deployment) -> str | None:
    """The host's own private address, when the file declares itself one host of a multi-host
    deployment (`x-omnivoip-host: {address: ...}`) and that address is RFC 1918; else None."""
    declared = deployment.data.get(HOST_DECLARATION)
    address = declared.get("address") if isinstance(declared, dict) else None
    try:
        parsed = ipaddress.IPv4Address(str(address))
    except ValueError:
        return None
    return str(parsed) if any(parsed in block for block in PRIVATE_BLOCKS) else None


@rule("OV110", "internal-service-published", "error", "Databases, Redis, MinIO and Gearman serve only the compose network; publishing them puts their login in front of the network. One host of a multi-host deployment may publish them on its own private address, for the other hosts.", "CIS 5.9; KICS Container Traffic Not Bound To Host Interface")
def internal_published(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    own = declared_private_address(deployment)
    for name, service in _services(deployment):
        if not is_internal(name, service):
            continue
        for index, spec in _ports(service):
            if spec.host_ip in LOOPBACK or (own is not None and spec.host_ip == own):
                continue
            location = deployment.where("services", name, "ports", index)
            if own is not None:
                message = (
                    f"internal service {name!r} is published on {spec.host_ip or 'every interface'} ({spec.describe()}), but this host's "
                    f"private address is {own} ({HOST_DECLARATION}.address); publish it there for the other hosts, or on 127.0.0.1"
                )
            else:
                message = f"internal service {name!r} is published to the host ({spec.describe()}); remove the port or bind it to 127.0.0.1"
            yield Hit(location, message, name)


def image_tag_of(image: str) -> str | None:
    """The tag of an image reference (`registry:5000/x/y:tag`), None when it has none."""
    last = image.rsplit("/", 1)[-1]
    _, _, tag = last.partition(":")
    return tag or None


@rule("OV111", "image-tag", "warning", "An image without a pinned tag changes under you on the next pull.", "CIS 5.28; KICS Image Version Not Explicit; dclint service-image-require-explicit-tag")
def image_tag(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        image = service.get("image")
        if image is None or image == "":
            continue
        text = str(image)
        if "@sha256:" in text:
            continue
        tag = image_tag_of(text)
        if tag is None or tag.lower() in FLOATING_TAGS:
            what = "no tag" if tag is None else f"the moving tag {tag!r}"
            yield Hit(deployment.where("services", name, "image"), f"service {name!r} uses image {text!r} with {what}; pin a release", name)


def _healthcheck_disabled(check: dict[str, Any]) -> bool:
    test = check.get("test")
    if truthy(check.get("disable")):
        return True
    return isinstance(test, list) and (not test or str(test[0]).upper() == "NONE")


def _shell_none(check: dict[str, Any]) -> bool:
    """`test: NONE` as a string is not the NONE form: Compose runs a shell command named NONE."""
    test = check.get("test")
    return isinstance(test, str) and test.strip().upper() == "NONE"


@rule("OV112", "healthcheck", "warning", "Without a working healthcheck, depends_on cannot wait for readiness and failures go unseen.", "CIS 5.27; KICS Healthcheck Not Set")
def healthcheck(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        check = service.get("healthcheck")
        if not isinstance(check, dict):
            yield Hit(deployment.where("services", name), f"service {name!r} has no healthcheck", name)
        elif _healthcheck_disabled(check):
            if truthy(check.get("disable")):
                location = deployment.where("services", name, "healthcheck", "disable")
            elif isinstance(check.get("test"), list) and check["test"]:
                location = deployment.where("services", name, "healthcheck", "test", 0)
            else:
                location = deployment.where("services", name, "healthcheck", "test")
            yield Hit(location, f"service {name!r} disables its healthcheck", name)
        elif _shell_none(check):
            location = deployment.where("services", name, "healthcheck", "test")
            yield Hit(location, f"service {name!r} has the healthcheck `test: NONE`, a shell command that always fails; write [\"NONE\"] to disable it or a real check", name)
        elif check.get("test") in (None, ""):
            yield Hit(deployment.where("services", name, "healthcheck"), f"service {name!r} has a healthcheck without a test", name)


def _unlimited(value: Any) -> bool:
    return value is None or str(value).strip() in {"", "0", "-1", "0b", "0m", "0g"}


def _limit(service: dict[str, Any], key: str, legacy: str) -> bool:
    if not _unlimited(service.get(legacy)):
        return True
    return not _unlimited(_nested(service, "deploy", "resources", "limits", key))


@rule("OV113", "resource-limits", "warning", "Without memory and pids limits one runaway service can take the whole host down.", "CIS 5.11, 5.29; KICS Memory Not Limited / Pids Limit Not Set")
def resource_limits(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        missing = [label for key, legacy, label in (("memory", "mem_limit", "memory"), ("pids", "pids_limit", "pids")) if not _limit(service, key, legacy)]
        if missing:
            yield Hit(deployment.where("services", name), f"service {name!r} has no {' or '.join(missing)} limit", name)


@rule("OV114", "no-new-privileges", "warning", "no-new-privileges stops setuid binaries from regaining privileges. Swarm services cannot set it (docker stack deploy ignores security_opt): each node's daemon.json does.", "CIS 5.26; KICS No New Privileges Not Set")
def no_new_privileges(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        if deployment.orchestrator == "swarm":
            # Swarm services have no security_opt: `docker stack deploy` ignores the key, so it would only
            # pretend. The setting belongs in each node's daemon.json ("no-new-privileges": true).
            if service.get("security_opt"):
                yield Hit(
                    deployment.where("services", name, "security_opt"),
                    f"service {name!r} sets security_opt, which docker stack deploy ignores (Swarm services have no such option); "
                    'remove it and set "no-new-privileges": true in /etc/docker/daemon.json on every node',
                    name,
                )
            continue
        options = [_normalise_opt(option) for option in _list(service.get("security_opt"))]
        explicit_off = [index for index, option in enumerate(options) if option in {"no-new-privileges:false", "no-new-privileges:0"}]
        if explicit_off:
            location = deployment.where("services", name, "security_opt", explicit_off[0])
            yield Hit(location, f"service {name!r} turns no-new-privileges off", name)
        elif not any(option in {"no-new-privileges", "no-new-privileges:true", "no-new-privileges:1"} for option in options):
            yield Hit(deployment.where("services", name), f"service {name!r} does not set no-new-privileges:true", name)


@rule("OV115", "image-or-build", "error", "A service with neither image nor build cannot start: Compose stops with an error.", "Compose specification (services.image / services.build)")
def image_or_build(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        if ("services", name, "image") in deployment.raw_strings:
            continue  # an image from an unset variable is reported as undefined-variable
        if not service.get("image") and not service.get("build"):
            yield Hit(deployment.where("services", name), f"service {name!r} has neither image nor build", name)


# Options that take a password as their value, and redis-cli's `-a` (a redis-cli in the same text).
_PASSWORD_OPTION = re.compile(r"(?:^|[\s'\"])(--requirepass|--masterauth|--password|--passwd|--pass|--secret|--token|--api-key)(?:[\s=]+)(?=\S)")
_REDIS_CLI_AUTH = re.compile(r"redis-cli\b.*?(?:^|\s)(-a)\s+\S")
# Compose interpolation: `${NAME...}` or `$NAME`, not `$$` (a literal `$` the container's shell expands).
_INTERPOLATED = re.compile(r"(?<!\$)(?:\$\$)*\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def _argv_parts(deployment: Deployment, name: str, service: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, text) of every command line a service's containers run: command, entrypoint, healthcheck test."""
    for path in (("command",), ("entrypoint",), ("healthcheck", "test")):
        value = _nested(service, *path)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)] if value else []
        for index, item in items:
            full = ("services", name, *path) if index is None else ("services", name, *path, index)
            yield full, str(item)


@rule("OV116", "secret-in-command", "error", "A secret on a command line is readable by every local user (ps, /proc/PID/cmdline), and shows in docker inspect and in Swarm service specs. Pass it in the environment or a file.", "CIS 5.x (secrets); CWE-214 Invocation of Process Using Visible Sensitive Information")
def secret_in_command(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in _services(deployment):
        for path, text in _argv_parts(deployment, name, service):
            raw = deployment.raw_strings.get(path, "")
            secret_names = sorted(variable for variable in _interpolated_names(raw) if looks_like_credential_name(variable))
            option = _PASSWORD_OPTION.search(text) or _REDIS_CLI_AUTH.search(text)
            if secret_names:
                what = ", ".join(f"${{{secret}}}" for secret in secret_names)
                yield Hit(deployment.where(*path), f"service {name!r} puts {what} on a command line ({'/'.join(map(str, path[2:]))}): every local user can read it with ps; pass it in the environment or a file", name)
            elif option is not None:
                yield Hit(deployment.where(*path), f"service {name!r} passes a password with {option.group(1)} on a command line ({'/'.join(map(str, path[2:]))}): every local user can read it with ps; pass it in the environment or a file (redis-cli: REDISCLI_AUTH)", name)


def _interpolated_names(raw: str) -> set[str]:
    return {match.group("braced") or match.group("bare") for match in _INTERPOLATED.finditer(raw)}


@rule(
    "OV117",
    "asterisk-control-published",
    "error",
    "AMI (manager.conf) and ARI (http.conf) control every call and channel; they serve the backend and dialer on the compose network only, never a host port.",
    "CIS 5.9; docs/application.md (asterisk)",
)
def asterisk_control_published(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for config in deployment.configs:
        if config.name not in {"manager.conf", "http.conf"}:
            continue
        general = config.conf.section("general")
        enabled = general.get("enabled") if general else None
        if enabled is None or enabled.value.strip().lower() not in {"yes", "true", "1", "on"}:
            continue
        port_setting = general.get("port" if config.name == "manager.conf" else "bindport") if general else None
        port = int(port_setting.value) if port_setting and port_setting.value.strip().isdigit() else (5038 if config.name == "manager.conf" else 8088)
        service = deployment.services.get(config.service, {})
        own = declared_private_address(deployment)
        for index, spec in _ports(service):
            # One host of a multi-host deployment publishes it on its own private address, for the other hosts' clients.
            if own is not None and spec.host_ip == own:
                continue
            if spec.container_start <= port <= spec.container_end:
                what = "AMI" if config.name == "manager.conf" else "HTTP/ARI"
                yield Hit(deployment.where("services", config.service, "ports", index), f"service {config.service!r} publishes its {what} port {port} ({spec.describe()})", config.service)
