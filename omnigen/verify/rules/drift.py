"""Cross-file rules: values that several files must agree on, and the reference
deployment's known consistency defects (DOMAIN.md sections 1 and 3).

Every finding that involves two files names the other one in `related`, so
the user sees both ends of the disagreement.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from omnigen.catalog.media import ASTERISK_PORTS_PER_CALL, RTPENGINE_PORTS_PER_CALL, asterisk_ports_needed, rtpengine_ports_needed
from omnigen.formats.asteriskconf import ConfSection
from omnigen.formats.composeports import parse_port
from omnigen.inputs.placeholders import PLACEHOLDER_PATTERN as PLACEHOLDER
from omnigen.verify.deployment import ASTERISK_CONFIG_DIR, RTPENGINE_CONFIG, Deployment, Location, MountedConfig
from omnigen.verify.rules.registry import Hit, RuleContext, rule

ADDRESS_PLACEHOLDER = re.compile(r"\$\{?|PUBLIC_IP|PRIVATE_IP|EXTERNAL_IP|LOCAL_IP|YOUR_|x\.x\.x\.x|^<.*>$", re.I)
SECRET_KEY = re.compile(r"PASSWORD|PASSWD|_PASS$|SECRET|TOKEN|API_KEY|PRIVATE_KEY|_SK$", re.I)
DEFAULT_LISTEN = {"postgres": {5432}, "redis": {6379}, "minio": {9000}, "gearman": {4730}, "mysql": {3306}, "mariadb": {3306}}
# rtpengine defaults (daemon/main.c): port range 30000-40000, kernel table 0.
RTPENGINE_DEFAULT_RANGE = (30000, 40000)
# Asterisk's fallback when rtp.conf sets no range or an impossible one (res_rtp_asterisk.c).
ASTERISK_DEFAULT_RANGE = (5000, 31000)
SIP_PROTOCOLS = {"udp", "tcp", "tls"}


def _int(text: object) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def _asterisk_service(deployment: Deployment) -> str | None:
    for config in deployment.configs:
        if config.name in {"rtp.conf", "pjsip.conf"}:
            return config.service
    for name, service in deployment.services.items():
        if "asterisk" in name.lower() or "asterisk" in str(service.get("image") or "").lower():
            return name
    return None


def _rtpengine_service(deployment: Deployment) -> str | None:
    config = deployment.config("rtpengine.conf")
    if config:
        return config.service
    for name, service in deployment.services.items():
        if "rtpengine" in name.lower() or "rtpengine" in str(service.get("image") or "").lower():
            return name
    return None


@dataclass(frozen=True)
class RangeSource:
    """One file's statement of a port range, and where it is made."""

    what: str
    location: Location
    start: int | None
    end: int | None

    def describe(self) -> str:
        return f"{self.what} {self.start}-{self.end}"


def published_media_range(deployment: Deployment, service_name: str) -> RangeSource | None:
    """The union of the UDP port ranges (more than one port) a service publishes, when it is one contiguous range."""
    service = deployment.services.get(service_name, {})
    spans: list[tuple[int, int, int]] = []
    for index, entry in enumerate(service.get("ports") or []):
        spec = parse_port(entry)
        if spec and spec.protocol == "udp" and spec.container_end > spec.container_start:
            spans.append((spec.container_start, spec.container_end, index))
    if deployment.orchestrator == "swarm":
        spans += _host_mode_runs(deployment, service_name)
    if not spans:
        return None
    spans.sort()
    start, end, first_index = spans[0]
    for span_start, span_end, _ in spans[1:]:
        if span_start > end + 1:
            location = deployment.where("services", service_name, "ports", first_index)
            return RangeSource("compose ports (not one contiguous range)", location, None, None)
        end = max(end, span_end)
    return RangeSource("compose ports", deployment.where("services", service_name, "ports", first_index), start, end)


def _host_mode_runs(deployment: Deployment, service_name: str) -> list[tuple[int, int, int]]:
    """Swarm publishes host-mode ports one entry each (no ranges in long syntax): runs of two or more
    consecutive single UDP ports are a media range, a lone one (SIP) is not."""
    singles = []
    for index, entry in enumerate(deployment.services.get(service_name, {}).get("ports") or []):
        spec = parse_port(entry)
        if spec and spec.protocol == "udp" and spec.container_end == spec.container_start:
            singles.append((spec.container_start, index))
    singles.sort()
    runs: list[tuple[int, int, int]] = []
    for port, index in singles:
        if runs and port == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], port, runs[-1][2])
        else:
            runs.append((port, port, index))
    return [run for run in runs if run[1] > run[0]]


def _asterisk_services(deployment: Deployment) -> list[tuple[str, MountedConfig | None]]:
    """Each Asterisk service with the rtp.conf it mounts. A Swarm stack runs one per voice host,
    each with its own range; a single-host deployment runs one."""
    mounting = list(dict.fromkeys(config.service for config in deployment.configs if config.name in {"rtp.conf", "pjsip.conf"}))
    if len(mounting) > 1:
        return [(service, next((config for config in deployment.configs_named("rtp.conf") if config.service == service), None)) for service in mounting]
    service = _asterisk_service(deployment)
    return [(service, deployment.config("rtp.conf"))] if service is not None else []


def rtp_conf_range(config: MountedConfig) -> RangeSource:
    """The rtpstart-rtpend range of a mounted rtp.conf, with where each end is set."""
    general = config.conf.section("general")
    start = general.get("rtpstart") if general else None
    end = general.get("rtpend") if general else None
    anchor = start or end
    line = anchor.line if anchor else (general.line if general else 1)
    start_value = _int(start.value) if start else ASTERISK_DEFAULT_RANGE[0]
    end_value = _int(end.value) if end else ASTERISK_DEFAULT_RANGE[1]
    label = "rtp.conf rtpstart-rtpend" if start and end else "rtp.conf (default range)"
    return RangeSource(label, Location(config.path, line), start_value, end_value)


def _rtpengine_range(config: MountedConfig) -> RangeSource:
    section = config.conf.section("rtpengine")
    low = section.get("port-min") if section else None
    high = section.get("port-max") if section else None
    anchor = low or high
    line = anchor.line if anchor else (section.line if section else 1)
    return RangeSource(
        "rtpengine.conf port-min/port-max" if low and high else "rtpengine.conf (default range)",
        Location(config.path, line),
        _int(low.value) if low else RTPENGINE_DEFAULT_RANGE[0],
        _int(high.value) if high else RTPENGINE_DEFAULT_RANGE[1],
    )


def _env_range(deployment: Deployment, service: str | None, low_key: str, high_key: str) -> RangeSource | None:
    """The range from the .env, or from the service's own environment when the .env does not set it."""
    if low_key in deployment.env or high_key in deployment.env:
        location = deployment.env_location(low_key) or deployment.env_location(high_key)
        assert location is not None
        return RangeSource(f".env {low_key}/{high_key}", location, _int(deployment.env.get(low_key)), _int(deployment.env.get(high_key)))
    if service:
        env = deployment.service_env(service)
        if low_key in env or high_key in env:
            location = deployment.where("services", service, "environment", low_key if low_key in env else high_key)
            return RangeSource(f"{service} environment {low_key}/{high_key}", location, _int(env.get(low_key)), _int(env.get(high_key)))
    return None


def _disagreement(sources: list[RangeSource], family: str, service: str | None) -> Iterator[Hit]:
    if len({(source.start, source.end) for source in sources}) > 1:
        first, *others = sources
        described = "; ".join(source.describe() for source in sources)
        yield Hit(first.location, f"the {family} RTP range differs between files ({described})", service, tuple(source.location for source in others))


@rule("OV201", "rtp-range-drift", "error", "The RTP range must be the same in compose, rtp.conf/rtpengine.conf and .env, or media arrives on ports nobody listens on.", "DOMAIN.md s.1, s.3")
def rtp_range_drift(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for asterisk, rtp in _asterisk_services(deployment):
        sources = [source for source in (published_media_range(deployment, asterisk), rtp_conf_range(rtp) if rtp else None) if source]
        if sources:
            env = _env_range(deployment, asterisk, "ACD_RTP_PORT_MIN", "ACD_RTP_PORT_MAX")
            yield from _disagreement([*sources, *([env] if env else [])], "Asterisk", asterisk)
    rtpengine = _rtpengine_service(deployment)
    config = deployment.config("rtpengine.conf")
    if rtpengine is not None:
        sources = [source for source in (published_media_range(deployment, rtpengine), _rtpengine_range(config) if config else None) if source]
        if sources:
            env = _env_range(deployment, rtpengine, "RTPENGINE_RTP_PORT_MIN", "RTPENGINE_RTP_PORT_MAX")
            yield from _disagreement([*sources, *([env] if env else [])], "rtpengine", rtpengine)


@rule("OV202", "rtp-range-parity", "error", "rtpstart must be even and rtpend odd (RTCP uses port+1); rtpstart >= rtpend makes Asterisk fall back to 5000-31000.", "res_rtp_asterisk.c; DOMAIN.md s.3")
def rtp_parity(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for rtp in deployment.configs_named("rtp.conf"):
        yield from _rtp_parity(rtp)


def _rtp_parity(rtp: MountedConfig) -> Iterator[Hit]:
    general = rtp.conf.section("general")
    if general is None:
        return
    start_setting, end_setting = general.get("rtpstart"), general.get("rtpend")
    start = _int(start_setting.value) if start_setting else None
    end = _int(end_setting.value) if end_setting else None
    if start_setting and start is not None and start % 2:
        yield Hit(Location(rtp.path, start_setting.line), f"rtpstart={start} is odd; Asterisk uses even RTP ports", rtp.service)
    if end_setting and end is not None and end % 2 == 0:
        yield Hit(Location(rtp.path, end_setting.line), f"rtpend={end} is even; the last RTCP port (rtpend+1) falls outside the range", rtp.service)
    if start_setting and start is not None and end is not None and start >= end:
        yield Hit(Location(rtp.path, start_setting.line), f"rtpstart={start} >= rtpend={end}; Asterisk silently falls back to 5000-31000", rtp.service)
    for setting, value in ((start_setting, start), (end_setting, end)):
        if setting and value is not None and not 1024 <= value <= 65535:
            yield Hit(Location(rtp.path, setting.line), f"{setting.key}={value} is outside 1024-65535; Asterisk clamps it", rtp.service)


@rule("OV203", "rtp-host-port-mismatch", "error", "SDP carries the container port; the published host port must be identical (external_media_address rewrites only the address).", "DOMAIN.md s.3; moby/moby#53384")
def rtp_host_port(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in deployment.services.items():
        for index, entry in enumerate(service.get("ports") or []):
            spec = parse_port(entry)
            if spec is None or spec.protocol != "udp" or spec.host_start is None:
                continue
            if (spec.host_start, spec.host_end) != (spec.container_start, spec.container_end):
                location = deployment.where("services", name, "ports", index)
                yield Hit(location, f"UDP port mapping {spec.describe()} changes the port number; media and SIP ports must publish host == container", name)


def _compose_subnets(deployment: Deployment) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Location]]:
    subnets = []
    networks = deployment.data.get("networks")
    if isinstance(networks, dict):
        for net_name, network in networks.items():
            ipam = network.get("ipam") if isinstance(network, dict) else None
            configs = ipam.get("config") if isinstance(ipam, dict) else None
            for index, config in enumerate(configs if isinstance(configs, list) else []):
                if isinstance(config, dict) and config.get("subnet"):
                    try:
                        subnet = ipaddress.ip_network(str(config["subnet"]), strict=False)
                    except ValueError:
                        continue
                    subnets.append((subnet, deployment.where("networks", net_name, "ipam", "config", index, "subnet")))
    return subnets


def _sip_transports(config: MountedConfig) -> Iterator[ConfSection]:
    for section in config.conf.sections:
        if section.template:
            continue
        effective = config.conf.effective(section)
        kind = effective.get("type")
        protocol = effective.get("protocol")
        if kind and kind.value == "transport" and (protocol is None or protocol.value.lower() in SIP_PROTOCOLS):
            yield effective


def _host_networked(deployment: Deployment, service: str) -> bool:
    return str(deployment.services.get(service, {}).get("network_mode") or "").strip().lower() == "host"


@rule("OV204", "local-net-subnet", "error", "In bridge mode pjsip local_net must cover the compose subnet, or Asterisk rewrites addresses for peers on its own network.", "DOMAIN.md s.3")
def local_net(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for pjsip in deployment.configs_named("pjsip.conf"):
        if not _host_networked(deployment, pjsip.service):
            yield from _local_net(deployment, pjsip)


def _local_net(deployment: Deployment, pjsip: MountedConfig) -> Iterator[Hit]:
    subnets = _compose_subnets(deployment)
    for section in _sip_transports(pjsip):
        nets = []
        for setting in section.get_all("local_net"):
            try:
                nets.append(ipaddress.ip_network(setting.value, strict=False))
            except ValueError:
                yield Hit(Location(pjsip.path, setting.line), f"[{section.name}] local_net={setting.value} is not a network", pjsip.service)
        if not section.get_all("local_net"):
            related = tuple(location for _, location in subnets)
            yield Hit(Location(pjsip.path, section.line), f"[{section.name}] has no local_net; Asterisk treats the container network as external", pjsip.service, related)
            continue
        for subnet, location in subnets:
            if not any(subnet.version == net.version and subnet.subnet_of(net) for net in nets):  # type: ignore[arg-type]
                yield Hit(Location(pjsip.path, section.line), f"[{section.name}] local_net does not cover the compose subnet {subnet}", pjsip.service, (location,))


_VARIABLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _variables(value: str) -> list[str]:
    """Names of the ${VAR} / $VAR references in a config value (filled by the container's entrypoint)."""
    return [braced or bare for braced, bare in _VARIABLE_REFERENCE.findall(value)]


@rule("OV205", "external-address", "error", "Behind Docker NAT, SIP and SDP must advertise the host's reachable address; a missing or unfilled one gives one-way audio.", "DOMAIN.md s.1, s.3 (rtpengine's interfaces: OV302)")
def external_address(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for pjsip in deployment.configs_named("pjsip.conf"):
        if not _host_networked(deployment, pjsip.service):
            yield from _external_address(deployment, pjsip)


def _external_address(deployment: Deployment, pjsip: MountedConfig) -> Iterator[Hit]:
    service_env = deployment.service_env(pjsip.service)
    service_location = deployment.where("services", pjsip.service)
    for section in _sip_transports(pjsip):
        for key in ("external_media_address", "external_signaling_address"):
            setting = section.get(key)
            if setting is None or not setting.value:
                yield Hit(Location(pjsip.path, section.line), f"[{section.name}] has no {key}; phones outside the container network get the container address", pjsip.service)
                continue
            missing = [name for name in _variables(setting.value) if not service_env.get(name)]
            if missing:
                yield Hit(
                    Location(pjsip.path, setting.line),
                    f"[{section.name}] {key}={setting.value}: {', '.join(missing)} is not in the {pjsip.service!r} service environment, so it is never filled",
                    pjsip.service,
                    (service_location,),
                )
            elif not _variables(setting.value) and ADDRESS_PLACEHOLDER.search(setting.value):
                yield Hit(Location(pjsip.path, setting.line), f"[{section.name}] {key}={setting.value} is a placeholder, not an address", pjsip.service)
    # rtpengine's `interface` addresses are judged by OV302 (rules/edge.py).


def _includes(deployment: Deployment) -> set[str]:
    included: set[str] = set()
    for config in deployment.configs:
        for _, directive in config.conf.directives:
            parts = directive.split(None, 1)
            if len(parts) == 2:
                target = parts[1].strip().strip('"<>')
                included.add(posixpath.normpath(posixpath.join(ASTERISK_CONFIG_DIR, target)))
    return included


def _rtpengine_config_path(deployment: Deployment, service: str) -> str:
    command = deployment.services.get(service, {}).get("command")
    words = command if isinstance(command, list) else shlex.split(str(command)) if isinstance(command, str) else []
    for index, word in enumerate(str(word) for word in words):
        if word.startswith("--config-file="):
            return word.split("=", 1)[1]
        if word == "--config-file" and index + 1 < len(words):
            return str(words[index + 1])
    return RTPENGINE_CONFIG


def _expected_path(deployment: Deployment, config: MountedConfig) -> str:
    if config.name == "rtpengine.conf":
        return _rtpengine_config_path(deployment, config.service)
    return posixpath.join(ASTERISK_CONFIG_DIR, config.name)


@rule("OV206", "config-not-read", "error", "Asterisk reads /etc/asterisk/<name>.conf (rtpengine /etc/rtpengine/rtpengine.conf); a config mounted elsewhere is silently ignored.", "DOMAIN.md s.1")
def config_not_read(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    included = _includes(deployment)

    def read_there(config: MountedConfig) -> bool:
        expected = _expected_path(deployment, config)
        target = posixpath.normpath(config.target)
        return target == posixpath.normpath(expected) or target in included

    # A file mounted twice counts as read when one of its mounts is where it is read.
    effective = {(config.service, config.path) for config in deployment.configs if read_there(config)}
    for config in deployment.configs:
        expected = _expected_path(deployment, config)
        if not read_there(config) and (config.service, config.path) not in effective:
            yield Hit(
                Location(config.path, 1),
                f"{config.name} is mounted at {config.target} in service {config.service!r}, where it is never read (expected {expected}, or #include it)",
                config.service,
                (config.mount,),
            )


def listen_ports(service: dict[str, Any]) -> set[int]:
    """The ports a service listens on: its published and exposed container ports and the ports its command names."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        spec = parse_port(entry)
        if spec:
            ports.update(range(spec.container_start, spec.container_end + 1))
    for entry in service.get("expose") or []:
        spec = parse_port(entry if isinstance(entry, (int, str)) else None)
        if spec:
            ports.update(range(spec.container_start, spec.container_end + 1))
    command = service.get("command")
    text = " ".join(str(part) for part in command) if isinstance(command, list) else str(command or "")
    main = {int(match.group(1)) for match in re.finditer(r"--(?:port|address)[ =]\S*?:?(\d+)\b", text)}
    extra = {int(match.group(1)) for match in re.finditer(r"--console-address[ =]\S*?:?(\d+)\b", text)}
    ports.update(main | extra)
    if not main:
        # The image's default port, unless the command moves it (redis-server --port 6380).
        image = str(service.get("image") or "").lower()
        for hint, defaults in DEFAULT_LISTEN.items():
            if hint in image:
                ports.update(defaults)
    return ports


@dataclass(frozen=True)
class ToldAddress:
    """An address a service is told: a host variable with its _PORT twin, a URL, or host:port."""

    variable: str  # the variable naming the host (the URL or host:port itself for those)
    port_variable: str  # the variable giving the port (the same variable for a URL or host:port)
    host: str
    port: int


def told_addresses(env: dict[str, str]) -> Iterator[ToldAddress]:
    """Every address in one service's environment (the clients' side of OV207 and the multi-host checks)."""
    for key, value in env.items():
        for suffix in ("_HOST", "_SERVER", "_HOSTNAME"):
            if key.endswith(suffix):
                port_key = key[: -len(suffix)] + "_PORT"
                port = _int(env.get(port_key))
                if port is not None:
                    yield ToldAddress(key, port_key, value, port)
        if "://" in value:
            try:
                parts = urlsplit(value)
                host, url_port = parts.hostname, parts.port
            except ValueError:
                continue
            if host and url_port is not None:
                yield ToldAddress(key, key, host, url_port)
        elif re.fullmatch(r"[A-Za-z0-9_.-]+:\d+", value):
            host, _, port_text = value.partition(":")
            yield ToldAddress(key, key, host, int(port_text))


@rule("OV207", "client-port-mismatch", "error", "A client must be told the port its server listens on inside the network, not a host-side port.", "DOMAIN.md s.1 (dialer DIALER_POSTGRES_PORT=5433)")
def client_port(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    services = deployment.services
    for name in services:
        env = deployment.service_env(name)
        for told in told_addresses(env):
            if told.host not in services:
                continue
            variable, server, port = told.port_variable, told.host, told.port
            listening = listen_ports(services[server])
            if listening and port not in listening:
                location = deployment.where("services", name, "environment", variable)
                raw = deployment.raw_strings.get(("services", name, "environment", variable), "")
                sources = [deployment.env_location(var) for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", raw)]
                related = tuple(source for source in sources if source)
                yield Hit(location, f"service {name!r} is told {variable}={port} for {server!r}, which listens on {', '.join(map(str, sorted(listening)))}", name, related)


def _placeholder(key: str, value: str) -> bool:
    return bool(SECRET_KEY.search(key) and value and PLACEHOLDER.search(value))


@rule("OV208", "placeholder-secret", "error", "A placeholder password (CHANGE_ME...) is a published default: anyone can log in.", "CIS 4.10 (secrets); DOMAIN.md s.1")
def placeholder_secret(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    reported_from_env: set[str] = set()
    for key, value in deployment.env.items():
        location = deployment.env_location(key)
        if location and _placeholder(key, value):
            reported_from_env.add(value)
            yield Hit(location, f"{key} holds a placeholder, not a secret")
    for name in deployment.services:
        for key, value in deployment.service_env(name).items():
            if not _placeholder(key, value):
                continue
            raw = deployment.raw_strings.get(("services", name, "environment", key), "")
            if value in reported_from_env and "$" in raw:
                continue  # the placeholder comes from the .env, reported there
            yield Hit(deployment.where("services", name, "environment", key), f"service {name!r} sets {key} to a placeholder, not a secret", name)
    for pjsip in deployment.configs_named("pjsip.conf"):
        for section in pjsip.conf.sections:
            for setting in section.get_all("password"):
                if PLACEHOLDER.search(setting.value):
                    yield Hit(Location(pjsip.path, setting.line), f"[{section.name}] password is a placeholder, not a secret", pjsip.service)


_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)
_HOST_PART = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)(?::(?:\d+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?))?(?:[/?#]|$)")
_UNENCODED = re.compile(r"[/?#\[\]@\s]|%(?![0-9A-Fa-f]{2})")
_VARIABLE = re.compile(r"\$\{?[A-Za-z_]")


def _userinfo(url: str) -> str | None:
    """The user:password part of a URL, read the way a person meant it.

    A password with an unencoded `/`, `#` or `@` moves the authority's end, so
    the credentials are taken up to the last `@` that is followed by a host.
    """
    match = _URL.match(url)
    if not match:
        return None
    rest = match.group("rest")
    for index in range(len(rest) - 1, -1, -1):
        if rest[index] == "@" and _HOST_PART.match(rest[index + 1 :]):
            userinfo = rest[:index]
            # `https://host/users/@me` has an @ in its path, not credentials.
            return userinfo if ":" in userinfo or not re.search(r"[/?#]", userinfo) else None
    return None


def _url_problem(raw: str, value: str) -> str | None:
    """Why the credentials in a URL are unsafe, or None. `raw` is the text before interpolation."""
    raw_userinfo = _userinfo(raw)
    if raw_userinfo and _VARIABLE.search(raw_userinfo):
        return "interpolates a secret into a URL without percent-encoding it"
    userinfo = _userinfo(value)
    if not userinfo:
        return None
    user, _, password = userinfo.partition(":")
    if _UNENCODED.search(password) or _UNENCODED.search(user) or ":" in password:
        return "has unencoded reserved characters in its credentials"
    return None


@rule("OV209", "url-secret-unencoded", "error", "A credential inside a URL must be percent-encoded; '@ / : #' in a password break the URL.", "RFC 3986 s.3.2.1; DOMAIN.md s.6")
def url_secret(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for key, value in deployment.env.items():
        location = deployment.env_location(key)
        problem = _url_problem(deployment.env_raw.get(key, value), value)
        if location and problem:
            yield Hit(location, f"{key} {problem}")
    for name in deployment.services:
        for key, value in deployment.service_env(name).items():
            raw = deployment.raw_strings.get(("services", name, "environment", key), value)
            if re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", raw.strip()):
                continue  # the whole value is one .env variable: judged at its .env line
            problem = _url_problem(raw, value)
            if problem:
                yield Hit(deployment.where("services", name, "environment", key), f"service {name!r}: {key} {problem}", name)


def _shared_capacity(calls: int, needed: int, asterisks: list[tuple[str, MountedConfig]]) -> Iterator[Hit]:
    """Several Asterisks (a Swarm stack: one per voice host) share the calls: their ranges add up."""
    sources = [rtp_conf_range(rtp) for _, rtp in asterisks]
    total = sum(source.end - source.start + 1 for source in sources if source.start is not None and source.end is not None)
    if total < needed:
        yield Hit(
            sources[0].location,
            f"the {len(asterisks)} Asterisk RTP ranges hold {total} ports together; {calls} bridged calls need {needed} ({ASTERISK_PORTS_PER_CALL} per call) plus headroom",
            asterisks[0][0],
            tuple(source.location for source in sources[1:]),
        )


@rule("OV210", "rtp-capacity", "error", "A bridged call uses 2 channels x 2 ports; a smaller range refuses calls under load.", "res_rtp_asterisk.c; DOMAIN.md s.3")
def rtp_capacity(deployment: Deployment, context: RuleContext) -> Iterator[Hit]:
    if context.calls is None:
        return
    needed = asterisk_ports_needed(context.calls)
    shared = [(service, rtp) for service, rtp in _asterisk_services(deployment) if rtp is not None]
    rtp = deployment.config("rtp.conf")
    asterisk = _asterisk_service(deployment)
    published = published_media_range(deployment, asterisk) if asterisk else None
    if len(shared) > 1:
        yield from _shared_capacity(context.calls, needed, shared)
    elif rtp:
        source = rtp_conf_range(rtp)
        related = (published.location,) if published else ()
        if source.start is not None and source.end is not None and source.end - source.start + 1 < needed:
            size = source.end - source.start + 1
            yield Hit(source.location, f"the RTP range holds {size} ports; {context.calls} bridged calls need {needed} ({ASTERISK_PORTS_PER_CALL} per call) plus headroom", rtp.service, related)
    elif published and published.start is not None and published.end is not None and published.end - published.start + 1 < needed:
        size = published.end - published.start + 1
        yield Hit(published.location, f"the published RTP range holds {size} ports; {context.calls} bridged calls need {needed} ({ASTERISK_PORTS_PER_CALL} per call)", asterisk)
    engine = deployment.config("rtpengine.conf")
    if engine:
        source = _rtpengine_range(engine)
        engine_needed = rtpengine_ports_needed(context.calls)
        if source.start is not None and source.end is not None and source.end - source.start + 1 < engine_needed:
            size = source.end - source.start + 1
            yield Hit(source.location, f"rtpengine's range holds {size} ports; {context.calls} calls need {engine_needed} ({RTPENGINE_PORTS_PER_CALL} per call)", engine.service)


@rule("OV211", "undefined-variable", "error", "An unresolved ${VAR} becomes an empty string: a blank password, port or address.", "Compose interpolation")
def undefined_variable(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    where = f"not defined in {deployment.env_path}" if deployment.env_path else "not defined (no .env file found)"
    for item in deployment.unresolved:
        if item.message is not None:
            yield Hit(item.location, f"${{{item.name}}} in {item.key} is required ({item.message or 'no message'}) and {where}; Compose stops")
        else:
            yield Hit(item.location, f"${{{item.name}}} in {item.key} is {where}; Compose substitutes an empty string")


_REDIS_AUTH = re.compile(r"(^|\s)(-a|--pass|--askpass|--user)(\s|=|$)|-u\s+\S*://\S*@|REDISCLI_AUTH")


@rule("OV212", "healthcheck-auth", "error", "A healthcheck that cannot authenticate never reports healthy, so depends_on: service_healthy waits forever.", "CIS 5.27; DOMAIN.md s.1 (redis --requirepass, redis-cli without auth)")
def healthcheck_auth(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for name, service in deployment.services.items():
        command = service.get("command")
        command_text = " ".join(map(str, command)) if isinstance(command, list) else str(command or "")
        if "requirepass" not in command_text:  # `--requirepass X`, or a config line fed to `redis-server -`
            continue
        check = service.get("healthcheck")
        test = check.get("test") if isinstance(check, dict) else None
        test_text = " ".join(map(str, test)) if isinstance(test, list) else str(test or "")
        if "redis-cli" in test_text and not _REDIS_AUTH.search(test_text) and "REDISCLI_AUTH" not in deployment.service_env(name):
            yield Hit(
                deployment.where("services", name, "healthcheck", "test"),
                f"service {name!r} runs redis-server with requirepass, but its healthcheck calls redis-cli without a password (set REDISCLI_AUTH)",
                name,
                (deployment.where("services", name, "command"),),
            )


@rule("OV213", "rtpengine-duplicate-key", "error", "rtpengine reads a GLib key file: a key given twice silently keeps only the last value.", "GLib GKeyFile; DOMAIN.md s.1 (listen-ng twice)")
def rtpengine_duplicate(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    config = deployment.config("rtpengine.conf")
    if config is None:
        return
    for section in config.conf.sections:
        first: dict[str, int] = {}
        for setting in section.settings:
            if setting.key in first:
                yield Hit(
                    Location(config.path, setting.line),
                    f"[{section.name}] {setting.key} is set again (first on line {first[setting.key]}); only this value is used",
                    config.service,
                    (Location(config.path, first[setting.key]),),
                )
            else:
                first[setting.key] = setting.line


@rule("OV214", "rtpengine-kernel-table", "error", "Kernel forwarding (table >= 0) needs the xt_RTPENGINE module and NET_ADMIN, which containers on LXC or rootless hosts never get; table = -1 forwards in userspace.", "rtpengine docs (table); DOMAIN.md s.1, s.3")
def rtpengine_table(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    config = deployment.config("rtpengine.conf")
    section = config.conf.section("rtpengine") if config else None
    if config is None or section is None:
        return
    table = section.get("table")
    if table is None:
        yield Hit(Location(config.path, section.line), "rtpengine sets no table, so it tries kernel forwarding (table 0); set table = -1", config.service)
    elif (_int(table.value) or 0) >= 0:
        yield Hit(Location(config.path, table.line), f"table = {table.value} asks for kernel forwarding; set table = -1", config.service)


@dataclass(frozen=True)
class _Advertised:
    """What one Asterisk tells peers: an address, its SIP port and its RTP range, and where each is said."""

    service: str
    address: str
    location: Location
    sip_port: int | None
    rtp: RangeSource | None


def _advertised(deployment: Deployment, service: str, rtp: MountedConfig | None) -> _Advertised | None:
    pjsip = next((config for config in deployment.configs_named("pjsip.conf") if config.service == service), None)
    if pjsip is None:
        return None
    for section in _sip_transports(pjsip):
        address = section.get("external_media_address") or section.get("external_signaling_address")
        if address is None or not address.value or _variables(address.value):
            continue
        port_setting = section.get("external_signaling_port")
        port = _int(port_setting.value) if port_setting else None
        if port is None and (bind := section.get("bind")):
            port = _int(bind.value.rsplit(":", 1)[-1]) if ":" in bind.value else 5060
        return _Advertised(service, address.value, Location(pjsip.path, address.line), port, rtp_conf_range(rtp) if rtp else None)
    return None


@rule("OV215", "advertised-port-collision", "error", "Two Asterisks advertising one public address must not share its SIP port or RTP ports: a NAT forwards each port to one host, so calls of the other get no audio.", "DOMAIN.md s.3; docs/multi-host.md")
def advertised_collision(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    seen: list[_Advertised] = []
    for service, rtp in _asterisk_services(deployment):
        current = _advertised(deployment, service, rtp)
        if current is None:
            continue
        for earlier in seen:
            if earlier.address != current.address:
                continue
            if current.sip_port is not None and current.sip_port == earlier.sip_port:
                yield Hit(
                    current.location,
                    f"{service!r} and {earlier.service!r} both advertise {current.address} with SIP port {current.sip_port}; give each its own SIP port or address",
                    service,
                    (earlier.location,),
                )
            ranges = (current.rtp, earlier.rtp)
            if all(item is not None and item.start is not None and item.end is not None for item in ranges):
                assert current.rtp is not None and earlier.rtp is not None
                if current.rtp.start <= earlier.rtp.end and earlier.rtp.start <= current.rtp.end:  # type: ignore[operator]
                    yield Hit(
                        current.rtp.location,
                        f"{service!r} ({current.rtp.describe()}) and {earlier.service!r} ({earlier.rtp.describe()}) both advertise "
                        f"{current.address} with overlapping RTP ports; give each its own range or address",
                        service,
                        (earlier.rtp.location,),
                    )
        seen.append(current)


# The variables AMI/ARI clients read (components/backend/omnivoip/settings/base.py:288-296,
# components/dialer/api/main.py:34-37): (host, port, user, secret) of each interface.
ASTERISK_CLIENT_VARIABLES = {
    "manager.conf": ("ASTERISK_AMI_HOST", "ASTERISK_AMI_PORT", "ASTERISK_AMI_USER", "ASTERISK_AMI_SECRET"),
    "ari.conf": ("ASTERISK_ARI_HOST", "ASTERISK_ARI_PORT", "ASTERISK_ARI_USER", "ASTERISK_ARI_PASSWORD"),
}


def _asterisk_login(deployment: Deployment, conf_name: str, server: str) -> tuple[MountedConfig | None, int | None, MountedConfig | None]:
    """The mounted manager.conf/ari.conf of `server`, the port it serves on (manager.conf port, http.conf bindport) and the file saying so."""
    config = next((item for item in deployment.configs_named(conf_name) if item.service == server), None)
    if conf_name == "manager.conf":
        general = config.conf.section("general") if config else None
        port = general.get("port") if general else None
        return config, _int(port.value) if port else (5038 if config else None), config
    http = next((item for item in deployment.configs_named("http.conf") if item.service == server), None)
    general = http.conf.section("general") if http else None
    setting = general.get("bindport") if general else None
    return config, _int(setting.value) if setting else (8088 if http else None), http


@rule(
    "OV216",
    "asterisk-login",
    "error",
    "A service told an AMI or ARI user must find that user, with the same secret and port, in the manager.conf/ari.conf its "
    "Asterisk reads; otherwise it logs in with nothing (the backend falls back to localhost admin/admin).",
    "docs/application.md (asterisk); components/backend/omnivoip/settings/base.py:288-296",
)
def asterisk_login(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    services = deployment.services
    for name in services:
        env = deployment.service_env(name)
        for conf_name, (host_key, port_key, user_key, secret_key) in ASTERISK_CLIENT_VARIABLES.items():
            if host_key not in env or env[host_key] not in services:
                continue
            server = env[host_key]
            config, port, port_file = _asterisk_login(deployment, conf_name, server)
            where = deployment.where("services", name, "environment", host_key)
            if config is None:
                yield Hit(where, f"service {name!r} logs in to {server!r} with {host_key}, but {server!r} mounts no {conf_name}: Asterisk's sample keeps the interface off", name)
                continue
            if port is not None and _int(env.get(port_key)) != port and port_file is not None:
                yield Hit(
                    deployment.where("services", name, "environment", port_key),
                    f"service {name!r} is told {port_key}={env.get(port_key)}, but {port_file.path} serves on {port}",
                    name,
                    (Location(port_file.path, 1),),
                )
            user = env.get(user_key, "")
            section = config.conf.section(user)
            if section is None or section.template:
                yield Hit(
                    deployment.where("services", name, "environment", user_key),
                    f"service {name!r} logs in as {user_key}={user!r}, which {config.path} does not define",
                    name,
                    (Location(config.path, 1),),
                )
                continue
            setting = section.get("secret" if conf_name == "manager.conf" else "password")
            if setting is None or setting.value != env.get(secret_key):
                # Never print either secret: name where each is set.
                yield Hit(
                    deployment.where("services", name, "environment", secret_key),
                    f"service {name!r} logs in as {user!r} with {secret_key}, which is not the secret {config.path} gives {user!r}",
                    name,
                    (Location(config.path, setting.line if setting else section.line),),
                )


_DIALPLAN_QUEUE_APPS = re.compile(r"\b(?:Queue|AddQueueMember|RemoveQueueMember|PauseQueueMember|UnpauseQueueMember)\(([^,)]*)", re.I)


@rule(
    "OV217",
    "dialplan-names",
    "error",
    "Every dialplan context an endpoint names must exist in extensions.conf, and every queue the dialplan names in queues.conf; "
    "a missing context rejects the call, a missing queue drops the caller.",
    "Asterisk pjsip.conf context=, app_queue",
)
def dialplan_names(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    for pjsip in deployment.configs_named("pjsip.conf"):
        extensions = next((item for item in deployment.configs_named("extensions.conf") if item.service == pjsip.service), None)
        contexts = {section.name for section in extensions.conf.sections} if extensions else set()
        for section in pjsip.conf.sections:
            effective = pjsip.conf.effective(section)
            kind, context = effective.get("type"), effective.get("context")
            if section.template or kind is None or kind.value != "endpoint" or context is None:
                continue
            if context.value not in contexts:
                where = extensions.path if extensions else f"{pjsip.service}'s /etc/asterisk/extensions.conf (the image's sample)"
                yield Hit(Location(pjsip.path, context.line), f"endpoint [{section.name}] sends calls to context {context.value!r}, which {where} does not define", pjsip.service)
    for extensions in deployment.configs_named("extensions.conf"):
        queues_conf = next((item for item in deployment.configs_named("queues.conf") if item.service == extensions.service), None)
        queues = {section.name for section in queues_conf.conf.sections if section.name != "general"} if queues_conf else set()
        for section in extensions.conf.sections:
            for setting in section.settings:
                for match in _DIALPLAN_QUEUE_APPS.finditer(setting.value):
                    queue = match.group(1).strip()
                    if queue and queue not in queues:
                        where = queues_conf.path if queues_conf else f"{extensions.service} (no queues.conf mounted)"
                        yield Hit(Location(extensions.path, setting.line), f"the dialplan names queue {queue!r}, which {where} does not define", extensions.service)
