"""Cross-file rules: values that several files must agree on, and the reference
deployment's known consistency defects (DOMAIN.md sections 1 and 3)."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from omnigen.capacity import asterisk_ports_needed
from omnigen.deployment import ASTERISK_CONFIG_DIR, Deployment, MountedConfig
from omnigen.formats.composeports import PortSpec, parse_port
from omnigen.rules import Hit, RuleContext, rule

PLACEHOLDER = re.compile(r"change[_-]?(me|this)|your[_-]|replace[_-]?me|placeholder|^x{3,}$|^(password|secret|changeme)$", re.I)
ADDRESS_PLACEHOLDER = re.compile(r"\$\{?|PUBLIC_IP|PRIVATE_IP|EXTERNAL_IP|YOUR_|x\.x\.x\.x", re.I)
SECRET_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|_PASS$|TOKEN|API_KEY|PRIVATE_KEY|_SK$", re.I)
DEFAULT_LISTEN = {"postgres": {5432}, "redis": {6379}, "minio": {9000, 9001}, "gearman": {4730}, "mysql": {3306}, "mariadb": {3306}}
RTPENGINE_CONFIG = "/etc/rtpengine/rtpengine.conf"


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment")
    if isinstance(env, dict):
        return {str(key): "" if value is None else str(value) for key, value in env.items()}
    if isinstance(env, list):
        result = {}
        for item in env:
            key, _, value = str(item).partition("=")
            result[key] = value
        return result
    return {}


def _asterisk_service(deployment: Deployment) -> str | None:
    for config in deployment.configs:
        if config.name in {"rtp.conf", "pjsip.conf"}:
            return config.service
    for name, service in deployment.services.items():
        if "asterisk" in name.lower() or "asterisk" in str(service.get("image", "")).lower():
            return name
    return None


def _rtp_ports(deployment: Deployment, service_name: str) -> list[tuple[int, PortSpec]]:
    service = deployment.services.get(service_name, {})
    ports = service.get("ports")
    found = []
    if isinstance(ports, list):
        for index, entry in enumerate(ports):
            spec = parse_port(entry)
            if spec and spec.protocol == "udp" and spec.container_end > spec.container_start:
                found.append((index, spec))
    return found


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def _rtp_conf_range(config: MountedConfig) -> tuple[int | None, int | None, int, int]:
    general = config.conf.section("general")
    start = general.get("rtpstart") if general else None
    end = general.get("rtpend") if general else None
    return (
        _int(start.value) if start else None,
        _int(end.value) if end else None,
        start.line if start else (general.line if general else 1),
        end.line if end else (general.line if general else 1),
    )


@rule("OV201", "rtp-range-drift", "error", "The RTP range must be the same in compose, rtp.conf and .env, or media arrives on ports nobody listens on.", "DOMAIN.md s.1, s.3")
def rtp_range_drift(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    asterisk = _asterisk_service(deployment)
    if asterisk is None:
        return
    sources: list[tuple[str, int, tuple[int | None, int | None]]] = []
    for index, spec in _rtp_ports(deployment, asterisk):
        line = deployment.line("services", asterisk, "ports", index) or 1
        sources.append((deployment.compose_path, line, (spec.container_start, spec.container_end)))
    rtp = deployment.config("rtp.conf")
    if rtp:
        start, end, start_line, _ = _rtp_conf_range(rtp)
        sources.append((rtp.path, start_line, (start, end)))
    if deployment.env_path and ("ACD_RTP_PORT_MIN" in deployment.env or "ACD_RTP_PORT_MAX" in deployment.env):
        line = deployment.env_lines.get("ACD_RTP_PORT_MIN") or deployment.env_lines.get("ACD_RTP_PORT_MAX") or 1
        sources.append(
            (deployment.env_path, line, (_int(deployment.env.get("ACD_RTP_PORT_MIN")), _int(deployment.env.get("ACD_RTP_PORT_MAX"))))
        )
    ranges = {value for _, _, value in sources}
    if len(ranges) > 1:
        first = sources[0]
        described = "; ".join(f"{path}: {lo}-{hi}" for path, _, (lo, hi) in sources)
        yield Hit(first[0], first[1], f"the Asterisk RTP range differs between files ({described})", asterisk, tuple((p, l) for p, l, _ in sources[1:]))


@rule("OV202", "rtp-range-parity", "error", "rtpstart must be even and rtpend odd (RTCP uses port+1); rtpstart >= rtpend makes Asterisk fall back to 5000-31000.", "res_rtp_asterisk.c; DOMAIN.md s.3")
def rtp_parity(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    rtp = deployment.config("rtp.conf")
    if rtp is None:
        return
    start, end, start_line, end_line = _rtp_conf_range(rtp)
    if start is not None and start % 2:
        yield Hit(rtp.path, start_line, f"rtpstart={start} is odd; Asterisk uses even RTP ports", rtp.service)
    if end is not None and end % 2 == 0:
        yield Hit(rtp.path, end_line, f"rtpend={end} is even; the last RTCP port (rtpend+1) falls outside the range", rtp.service)
    if start is not None and end is not None and start >= end:
        yield Hit(rtp.path, start_line, f"rtpstart={start} >= rtpend={end}; Asterisk silently falls back to 5000-31000", rtp.service)


@rule("OV203", "rtp-host-port-mismatch", "error", "SDP carries the container port; the published host port must be identical (external_media_address rewrites only the address).", "DOMAIN.md s.3; moby/moby#53384")
def rtp_host_port(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in deployment.services.items():
        ports = service.get("ports")
        if not isinstance(ports, list):
            continue
        for index, entry in enumerate(ports):
            spec = parse_port(entry)
            if spec is None or spec.protocol != "udp" or spec.host_start is None:
                continue
            if (spec.host_start, spec.host_end) != (spec.container_start, spec.container_end):
                yield Hit(deployment.compose_path, deployment.line("services", name, "ports", index), f"UDP port mapping {spec.raw} changes the port number; media ports must publish host == container", name)


def _compose_subnets(deployment: Deployment) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]]:
    data = deployment.compose.data if isinstance(deployment.compose.data, dict) else {}
    subnets = []
    networks = data.get("networks")
    if isinstance(networks, dict):
        for net_name, network in networks.items():
            if not isinstance(network, dict):
                continue
            ipam = network.get("ipam")
            configs = ipam.get("config") if isinstance(ipam, dict) else None
            if not isinstance(configs, list):
                continue
            for index, config in enumerate(configs):
                if isinstance(config, dict) and config.get("subnet"):
                    try:
                        subnet = ipaddress.ip_network(str(config["subnet"]), strict=False)
                    except ValueError:
                        continue
                    subnets.append((subnet, deployment.line("networks", net_name, "ipam", "config", index, "subnet") or 1))
    return subnets


def _transports(config: MountedConfig) -> Iterator[Any]:
    for section in config.conf.sections:
        kind = section.get("type")
        if kind and kind.value == "transport":
            yield section


@rule("OV204", "local-net-subnet", "error", "pjsip local_net must cover the compose subnet, or Asterisk rewrites addresses for peers on its own network.", "DOMAIN.md s.3")
def local_net(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    pjsip = deployment.config("pjsip.conf")
    subnets = _compose_subnets(deployment)
    if pjsip is None or not subnets:
        return
    for section in _transports(pjsip):
        protocol = section.get("protocol")
        if protocol and protocol.value not in {"udp", "tcp", "tls"}:
            continue
        nets = []
        for setting in section.get_all("local_net"):
            try:
                nets.append(ipaddress.ip_network(setting.value, strict=False))
            except ValueError:
                yield Hit(pjsip.path, setting.line, f"[{section.name}] local_net={setting.value} is not a network", pjsip.service)
        for subnet, line in subnets:
            if not any(subnet.version == net.version and subnet.subnet_of(net) for net in nets):  # type: ignore[arg-type]
                yield Hit(pjsip.path, section.line, f"[{section.name}] local_net does not cover the compose subnet {subnet}", pjsip.service, ((deployment.compose_path, line),))


@rule("OV205", "external-address", "error", "In bridge mode SIP/SDP must advertise the host's reachable address; a missing or unfilled one gives one-way audio.", "DOMAIN.md s.1, s.3")
def external_address(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    pjsip = deployment.config("pjsip.conf")
    if pjsip is None:
        return
    service_env = _service_env(deployment.services.get(pjsip.service, {}))
    for section in _transports(pjsip):
        protocol = section.get("protocol")
        if protocol and protocol.value not in {"udp", "tcp", "tls"}:
            continue
        for key in ("external_media_address", "external_signaling_address"):
            setting = section.get(key)
            if setting is None:
                yield Hit(pjsip.path, section.line, f"[{section.name}] has no {key}; phones outside the container network get the container address", pjsip.service)
                continue
            value = setting.value
            variables = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value)
            if variables:
                missing = [var for var in variables if var not in service_env or not service_env[var]]
                if missing:
                    yield Hit(pjsip.path, setting.line, f"[{section.name}] {key}={value}: {', '.join(missing)} is not in the {pjsip.service!r} service environment, so it is never filled", pjsip.service)
                continue
            if ADDRESS_PLACEHOLDER.search(value):
                yield Hit(pjsip.path, setting.line, f"[{section.name}] {key}={value} is a placeholder, not an address", pjsip.service)


@rule("OV206", "config-not-read", "error", "Asterisk reads /etc/asterisk/<name>.conf (rtpengine /etc/rtpengine/rtpengine.conf); a config mounted elsewhere is silently ignored.", "DOMAIN.md s.1")
def config_not_read(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    included: set[str] = set()
    for config in deployment.configs:
        for _, directive in config.conf.directives:
            parts = directive.split(None, 1)
            if len(parts) == 2:
                target = parts[1].strip().strip('"<>')
                included.add(posixpath.normpath(posixpath.join(posixpath.dirname(config.target), target)))
    for config in deployment.configs:
        expected = RTPENGINE_CONFIG if config.name == "rtpengine.conf" else posixpath.join(ASTERISK_CONFIG_DIR, config.name)
        if posixpath.normpath(config.target) != expected and posixpath.normpath(config.target) not in included:
            yield Hit(config.path, 1, f"{config.name} is mounted at {config.target} in service {config.service!r}, where it is never read (expected {expected})", config.service)


def _listen_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        spec = parse_port(entry)
        if spec:
            ports.update(range(spec.container_start, spec.container_end + 1))
    for entry in service.get("expose") or []:
        spec = parse_port(entry if isinstance(entry, (int, str)) else None)
        if spec:
            ports.update(range(spec.container_start, spec.container_end + 1))
    image = str(service.get("image", "")).lower()
    for hint, defaults in DEFAULT_LISTEN.items():
        if hint in image:
            ports.update(defaults)
    command = service.get("command")
    text = " ".join(str(part) for part in command) if isinstance(command, list) else str(command or "")
    for match in re.finditer(r"--(?:port|address)[ =]:?(\d+)", text):
        ports.add(int(match.group(1)))
    return ports


def _client_targets(env: dict[str, str], services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, int]]:
    """(variable, server service, port) pairs a client is told."""
    for key, value in env.items():
        for suffix in ("_HOST", "_SERVER", "_HOSTNAME"):
            if key.endswith(suffix) and value in services:
                port_value = env.get(key[: -len(suffix)] + "_PORT")
                port = _int(port_value)
                if port is not None:
                    yield key[: -len(suffix)] + "_PORT", value, port
        if "://" in value:
            try:
                parts = urlsplit(value)
                host, port = parts.hostname, parts.port
            except ValueError:
                continue
            if host in services and port is not None:
                yield key, host, port
        elif re.fullmatch(r"[a-z0-9-]+:\d+", value):
            host, _, port_text = value.partition(":")
            if host in services:
                yield key, host, int(port_text)


@rule("OV207", "client-port-mismatch", "error", "A client must be told the port its server listens on inside the network, not a host-side port.", "DOMAIN.md s.1 (dialer DIALER_POSTGRES_PORT=5433)")
def client_port(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    services = deployment.services
    for name, service in services.items():
        env = _service_env(service)
        for variable, server, port in _client_targets(env, services):
            listening = _listen_ports(services[server])
            if listening and port not in listening:
                line = deployment.line("services", name, "environment", variable) or deployment.line("services", name, "environment")
                related = ((deployment.env_path, deployment.env_lines[variable]),) if deployment.env_path and variable in deployment.env_lines else ()
                yield Hit(deployment.compose_path, line, f"service {name!r} is told {variable}={port} for {server!r}, which listens on {', '.join(map(str, sorted(listening)))}", name, related)


@rule("OV208", "placeholder-secret", "error", "A placeholder password (CHANGE_ME...) is a published default: anyone can log in.", "CIS 4.10 (secrets); DOMAIN.md s.1")
def placeholder_secret(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    if deployment.env_path:
        for key, value in deployment.env.items():
            if SECRET_KEY.search(key) and value and PLACEHOLDER.search(value):
                yield Hit(deployment.env_path, deployment.env_lines.get(key), f"{key} holds a placeholder, not a secret")
    for name, service in deployment.services.items():
        for key, value in _service_env(service).items():
            if SECRET_KEY.search(key) and value and PLACEHOLDER.search(value):
                raw = deployment.line("services", name, "environment", key)
                if deployment.env_path and any(deployment.env.get(k) == value for k in deployment.env):
                    continue  # already reported at its .env line
                yield Hit(deployment.compose_path, raw, f"service {name!r} sets {key} to a placeholder, not a secret", name)


_URL_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://(?P<userinfo>[^/?#]*)@", re.I)


def _raw_env_text(deployment: Deployment, key: str) -> str | None:
    if not deployment.env_path:
        return None
    text = deployment.texts.get(deployment.env_path, "")
    line = deployment.env_lines.get(key)
    if line is None:
        return None
    return text.split("\n")[line - 1]


@rule("OV209", "url-secret-unencoded", "error", "A credential inside a URL must be percent-encoded; '@ / : #' in a password break the URL.", "RFC 3986 s.3.2.1; DOMAIN.md s.6")
def url_secret(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    if not deployment.env_path:
        return
    for key, value in deployment.env.items():
        raw = _raw_env_text(deployment, key) or ""
        if re.search(r"://[^@\s]*\$\{?[A-Za-z_]", raw):
            yield Hit(deployment.env_path, deployment.env_lines.get(key), f"{key} interpolates a secret into a URL without percent-encoding it")
            continue
        match = _URL_USERINFO.match(value)
        if not match:
            continue
        userinfo = match.group("userinfo")
        user, _, password = userinfo.partition(":")
        bad = re.search(r"[@:/#?\[\]\s]|%(?![0-9A-Fa-f]{2})", password) or re.search(r"[@/#?\[\]\s]|%(?![0-9A-Fa-f]{2})", user)
        if bad or value.count("@") > 1 and "@" not in value.split("@")[-1]:
            yield Hit(deployment.env_path, deployment.env_lines.get(key), f"{key} has unencoded characters in its credentials")


@rule("OV210", "rtp-capacity", "error", "A bridged call uses 2 channels x 2 ports; a smaller range refuses calls under load.", "res_rtp_asterisk.c; DOMAIN.md s.3")
def rtp_capacity(deployment: Deployment, context: RuleContext) -> Iterator[Hit]:
    if context.calls is None:
        return
    rtp = deployment.config("rtp.conf")
    needed = asterisk_ports_needed(context.calls)
    if rtp:
        start, end, line, _ = _rtp_conf_range(rtp)
        if start is not None and end is not None and end - start + 1 < needed:
            yield Hit(rtp.path, line, f"rtpstart-rtpend holds {end - start + 1} ports; {context.calls} bridged calls need {needed} (4 per call) plus headroom", rtp.service)
        return
    asterisk = _asterisk_service(deployment)
    if asterisk:
        for index, spec in _rtp_ports(deployment, asterisk):
            size = spec.container_end - spec.container_start + 1
            if size < needed:
                yield Hit(deployment.compose_path, deployment.line("services", asterisk, "ports", index), f"the published RTP range holds {size} ports; {context.calls} bridged calls need {needed}", asterisk)


@rule("OV211", "undefined-variable", "error", "An unresolved ${VAR} becomes an empty string: a blank password, port or address.", "Compose interpolation")
def undefined_variable(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    where = f"not defined in {deployment.env_path}" if deployment.env_path else "not defined (no .env file found)"
    for name, line, key in deployment.unresolved:
        yield Hit(deployment.compose_path, line, f"${{{name}}} in {key} is {where}")
