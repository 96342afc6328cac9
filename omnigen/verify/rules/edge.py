"""WebRTC edge rules (OV3xx): Kamailio, rtpengine and nginx must agree with
each other, with Asterisk and with what compose publishes (DOMAIN.md s.1, s.3).

Each rule is silent when the files it compares are not part of the
deployment, so a stack without the edge lints exactly as before.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from omnigen.formats.asteriskconf import ConfSection, ConfSetting
from omnigen.formats.composeports import PortSpec, parse_port
from omnigen.formats.kamailiocfg import KamailioCfg, Listen, parse_dispatcher_list, parse_kamailio_cfg
from omnigen.formats.nginxconf import Directive, NginxSyntaxError, parse_nginx
from omnigen.verify.deployment import Deployment, Location, MountedConfig, MountedText
from omnigen.verify.rules.registry import Hit, RuleContext, rule

KAMAILIO_DEFAULT_CONFIG = "/etc/kamailio/kamailio.cfg"
RTPENGINE_GROUP = "rtpengine"
_INTERFACE = re.compile(r"^(?:(?P<name>[A-Za-z0-9_.-]+)/)?(?P<address>[^!/\s]+)(?:!(?P<advertised>[^!\s]+))?$")
# Services whose nginx routes carry WebSocket upgrades.
WEBSOCKET_SERVICES = ("kamailio", "websockets")


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text).strip("[]")) if text else None
    except ValueError:
        return None


def _static_ips(deployment: Deployment, service: str) -> set[str]:
    networks = deployment.services.get(service, {}).get("networks")
    found: set[str] = set()
    if isinstance(networks, dict):
        for network in networks.values():
            if isinstance(network, dict):
                for key in ("ipv4_address", "ipv6_address"):
                    if network.get(key):
                        found.add(str(network[key]))
    return found


def _ports(deployment: Deployment, service: str) -> list[tuple[int, PortSpec]]:
    entries = deployment.services.get(service, {}).get("ports")
    found = []
    if isinstance(entries, list):
        for index, entry in enumerate(entries):
            spec = parse_port(entry)
            if spec is not None:
                found.append((index, spec))
    return found


def _command(deployment: Deployment, service: str) -> list[str]:
    command = deployment.services.get(service, {}).get("command")
    if isinstance(command, list):
        return [str(part) for part in command]
    return str(command).split() if command else []


def _in(config: MountedConfig | MountedText, line: int) -> Location:
    return Location(config.path, line)


# --- rtpengine ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rtpengine:
    """rtpengine.conf (parsed with the key-file dialect) and its [rtpengine] group."""

    config: MountedConfig
    group: ConfSection | None

    def get(self, key: str) -> ConfSetting | None:
        return self.group.get(key) if self.group else None

    def get_all(self, key: str) -> list[ConfSetting]:
        return self.group.get_all(key) if self.group else []

    def at(self, entry: ConfSetting | None) -> Location:
        line = entry.line if entry else (self.group.line if self.group else 1)
        return _in(self.config, line)


def _rtpengine(deployment: Deployment) -> _Rtpengine | None:
    config = deployment.config("rtpengine.conf")
    if config is None:
        return None
    return _Rtpengine(config, config.conf.section(RTPENGINE_GROUP))


def _items(entry: ConfSetting) -> list[str]:
    """A GLib string list: `;`-separated, a trailing `;` allowed."""
    return [item.strip() for item in entry.value.split(";") if item.strip()]


def _int(entry: ConfSetting | None) -> int | None:
    try:
        return int(entry.value) if entry else None
    except ValueError:
        return None


def _command_option(command: list[str], *names: str) -> str | None:
    """The value of `--name=value`, `--name value` or `-n value` in a command; the last one wins."""
    found = None
    for index, part in enumerate(command):
        for name in names:
            if part.startswith(name + "="):
                found = part.split("=", 1)[1]
            elif part == name and index + 1 < len(command):
                found = command[index + 1]
    return found


def _listen_ng(rtpengine: _Rtpengine) -> list[ConfSetting]:
    return rtpengine.get_all("listen-ng")


def _kamailio(deployment: Deployment) -> tuple[MountedText, KamailioCfg] | None:
    mounted = deployment.edge_config("kamailio.cfg")
    if mounted is None:
        return None
    return mounted, parse_kamailio_cfg(mounted.text)


def _split_host_port(text: str) -> tuple[str, int | None]:
    host, _, port = text.strip().rpartition(":")
    if not host:
        return text.strip(), None
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return text.strip(), None


@rule(
    "OV301",
    "rtpengine-control-socket",
    "error",
    "rtpengine must have exactly one listen-ng, and Kamailio's rtpengine_sock must point at it: a repeated key "
    "silently keeps only the last value, and a socket nobody listens on fails every call with SDP.",
    "DOMAIN.md s.1 (two listen-ng lines); rtpengine and Kamailio rtpengine module docs",
)
def rtpengine_control(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    rtpengine = _rtpengine(deployment)
    if rtpengine is None:
        return
    service = rtpengine.config.service
    entries = _listen_ng(rtpengine)
    if not entries:
        yield Hit(rtpengine.at(None), "rtpengine.conf has no listen-ng: Kamailio cannot control it", service)
        return
    kamailio = _kamailio(deployment)
    if kamailio is None:
        return
    mounted, cfg = kamailio
    sock = cfg.modparam("rtpengine", "rtpengine_sock")
    if sock is None:
        if cfg.has_module("rtpengine"):
            yield Hit(_in(mounted, 1), "kamailio.cfg loads rtpengine but sets no rtpengine_sock", mounted.service)
        return
    listen = entries[-1].value
    ng_host, ng_port = _split_host_port(listen)
    match = re.fullmatch(r"(?:(?P<proto>udp6?):)?(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d+)", sock.value.strip())
    if match is None:
        yield Hit(_in(mounted, sock.line), f"rtpengine_sock {sock.value!r} is not udp:ADDRESS:PORT (a single rtpengine)", mounted.service)
        return
    sock_host, sock_port = match.group("host").strip("[]"), int(match.group("port"))
    ng_address = _ip(ng_host)
    if ng_address is None or ng_address.is_unspecified:
        # Bound on every address: reachable by the service name and its static addresses.
        reachable = {service, *_static_ips(deployment, service)}
    elif ng_address.is_loopback:
        # The container's own loopback: another container cannot reach it.
        reachable = {ng_host} if mounted.service == service else set()
    else:
        reachable = {ng_host}
    if sock_port != ng_port or sock_host not in reachable:
        where = ", ".join(sorted(reachable)) or "nothing Kamailio can reach"
        yield Hit(
            _in(mounted, sock.line),
            f"rtpengine_sock {sock.value} does not reach rtpengine's listen-ng {listen} (reachable as {where} port {ng_port})",
            mounted.service,
            (rtpengine.at(entries[-1]),),
        )


def _interfaces(rtpengine: _Rtpengine) -> tuple[ConfSetting | None, list[tuple[str | None, str, str | None]]]:
    entry = rtpengine.get("interface")
    parsed = []
    for item in _items(entry) if entry else ():
        match = _INTERFACE.match(item)
        if match:
            parsed.append((match.group("name"), match.group("address"), match.group("advertised")))
        else:
            parsed.append((None, item, None))
    return entry, parsed


def _external_media_address(deployment: Deployment) -> tuple[str, Location] | None:
    pjsip = deployment.config("pjsip.conf")
    if pjsip is None:
        return None
    for section in pjsip.conf.sections:
        kind = section.get("type")
        setting = section.get("external_media_address")
        if kind and kind.value == "transport" and setting and _ip(setting.value):
            return setting.value, _in(pjsip, setting.line)
    return None


@rule(
    "OV302",
    "rtpengine-interface",
    "error",
    "rtpengine binds and advertises its interface addresses: a placeholder or an address that is not the container's "
    "own fails to start, and browsers must be given the address they reach (ADDRESS!ADVERTISED), the one Asterisk advertises.",
    "DOMAIN.md s.1, s.3 (interface NAME/IP!ADVERTISED_IP)",
)
def rtpengine_interface(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    rtpengine = _rtpengine(deployment)
    if rtpengine is None:
        return
    service = rtpengine.config.service
    entry, interfaces = _interfaces(rtpengine)
    if entry is None:
        misspelt = rtpengine.get("interfaces")
        if misspelt is not None:  # the v2 reference layout's spelling: rtpengine has no such option and ignores it
            yield Hit(rtpengine.at(misspelt), "rtpengine has no option `interfaces` (the key is `interface`), so it has no interface to relay on", service)
        else:
            yield Hit(rtpengine.at(None), "rtpengine.conf has no interface: rtpengine does not know which address to relay on", service)
        return
    at = rtpengine.at(entry)
    static = _static_ips(deployment, service)
    if not static:
        yield Hit(deployment.where("services", service), f"service {service!r} has no static ipv4_address, so no config can name the address rtpengine binds", service, (at,))
    advertised_public = _external_media_address(deployment)
    has_advertised = False
    for name, address, advertised in interfaces:
        label = f"{name}/{address}" if name else address
        if _ip(address) is None:
            yield Hit(at, f"interface {label}: {address!r} is not an IP address (placeholder?)", service)
            continue
        if static and address not in static:
            yield Hit(at, f"interface {label} binds {address}, but the container's address is {', '.join(sorted(static))}", service)
        if advertised is None:
            continue
        has_advertised = True
        if _ip(advertised) is None:
            yield Hit(at, f"interface {label}!{advertised}: {advertised!r} is not an IP address (placeholder?)", service)
        elif advertised_public and advertised != advertised_public[0]:
            yield Hit(at, f"interface {label} advertises {advertised}, but Asterisk advertises {advertised_public[0]} (external_media_address)", service, (advertised_public[1],))
    if not has_advertised:
        yield Hit(at, "no interface advertises a public address (NAME/ADDRESS!ADVERTISED): browsers are sent the container address", service)


def _rtp_conf_range(deployment: Deployment) -> tuple[int, int, Location] | None:
    rtp = deployment.config("rtp.conf")
    general = rtp.conf.section("general") if rtp else None
    if rtp is None or general is None:
        return None
    start, end = general.get("rtpstart"), general.get("rtpend")
    try:
        return int(start.value), int(end.value), _in(rtp, start.line)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return None


@rule(
    "OV303",
    "rtpengine-port-range",
    "error",
    "rtpengine's port-min..port-max must be set and published (SDP carries these ports), start even and end odd, "
    "and not overlap Asterisk's RTP range or another published port (OV201 and OV203 check the publishing itself).",
    "DOMAIN.md s.3, s.4; moby/moby#53384",
)
def rtpengine_ports(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    rtpengine = _rtpengine(deployment)
    if rtpengine is None:
        return
    service = rtpengine.config.service
    low_entry, high_entry = rtpengine.get("port-min"), rtpengine.get("port-max")
    low, high = _int(low_entry), _int(high_entry)
    if low is None or high is None:
        yield Hit(rtpengine.at(low_entry or high_entry), "rtpengine.conf must set port-min and port-max (the default 30000-40000 cannot be published)", service)
        return
    at = rtpengine.at(low_entry)
    if low % 2 or high % 2 == 0 or low >= high:
        yield Hit(at, f"port-min = {low}, port-max = {high}: the range must start even, end odd and not be empty", service)
    published = [(index, spec) for index, spec in _ports(deployment, service) if spec.protocol == "udp"]
    if not published:
        yield Hit(at, f"port-min..port-max {low}-{high} is not published by service {service!r} (UDP, host == container)", service, (deployment.where("services", service),))
    asterisk = _rtp_conf_range(deployment)
    if asterisk and low <= asterisk[1] and asterisk[0] <= high:
        yield Hit(at, f"rtpengine's {low}-{high} overlaps Asterisk's RTP range {asterisk[0]}-{asterisk[1]}", service, (asterisk[2],))
    for other in deployment.services:
        if other == service:
            continue
        for index, spec in _ports(deployment, other):
            if spec.protocol != "udp" or spec.host_start is None or spec.host_end is None:
                continue
            if spec.host_start <= high and low <= spec.host_end:
                yield Hit(deployment.where("services", other, "ports", index), f"service {other!r} publishes {spec.raw}, inside rtpengine's {low}-{high}", other, (at,))


# --- Kamailio -------------------------------------------------------------------------------------


@rule(
    "OV304",
    "kamailio-config-not-read",
    "error",
    "Kamailio reads the file its -f option names (default /etc/kamailio/kamailio.cfg) and the dispatcher list its list_file names; a file mounted elsewhere is ignored.",
    "Kamailio core and dispatcher docs; DOMAIN.md s.1 (configs mounted where nothing reads them)",
)
def kamailio_config_read(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    kamailio = _kamailio(deployment)
    if kamailio is None:
        return
    mounted, cfg = kamailio
    expected = _command_option(_command(deployment, mounted.service), "-f") or KAMAILIO_DEFAULT_CONFIG
    if mounted.target != expected:
        yield Hit(mounted.mount, f"kamailio.cfg is mounted at {mounted.target}, but Kamailio reads {expected}", mounted.service)
    dispatcher = deployment.edge_config("dispatcher.list")
    list_file = cfg.modparam("dispatcher", "list_file")
    if cfg.has_module("dispatcher") and list_file is not None:
        if dispatcher is None or dispatcher.service != mounted.service:
            yield Hit(_in(mounted, list_file.line), f"dispatcher list_file {list_file.value} is not mounted into service {mounted.service!r}", mounted.service)
        elif dispatcher.target != list_file.value:
            yield Hit(dispatcher.mount, f"dispatcher.list is mounted at {dispatcher.target}, but list_file is {list_file.value}", mounted.service, (_in(mounted, list_file.line),))


def _pjsip_sip_ports(deployment: Deployment) -> set[int]:
    pjsip = deployment.config("pjsip.conf")
    ports: set[int] = set()
    if pjsip is None:
        return ports
    for section in pjsip.conf.sections:
        kind, bind = section.get("type"), section.get("bind")
        if kind and kind.value == "transport" and bind:
            _, port = _split_host_port(bind.value)
            ports.add(port if port is not None else 5060)
    return ports


def _asterisk_service(deployment: Deployment) -> str | None:
    pjsip = deployment.config("pjsip.conf")
    return pjsip.service if pjsip else None


@rule(
    "OV305",
    "kamailio-dispatcher-asterisk",
    "error",
    "Kamailio's dispatcher must send to Asterisk's own static address and a port a pjsip transport binds; "
    "Asterisk identifies Kamailio by address, so names and host ports break the trust or the route.",
    "Kamailio dispatcher docs; DOMAIN.md s.3",
)
def kamailio_dispatcher(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    dispatcher = deployment.edge_config("dispatcher.list")
    asterisk = _asterisk_service(deployment)
    if dispatcher is None or asterisk is None:
        return
    addresses = _static_ips(deployment, asterisk)
    ports = _pjsip_sip_ports(deployment)
    destinations = parse_dispatcher_list(dispatcher.text)
    if not destinations:
        yield Hit(_in(dispatcher, 1), "dispatcher.list has no destination: every call from a browser fails with 503", dispatcher.service)
    for destination in destinations:
        match = re.fullmatch(r"sips?:(?:[^@]+@)?(?P<host>\[[^\]]+\]|[^:;>]+)(?::(?P<port>\d+))?(?:;.*)?", destination.uri)
        if match is None:
            yield Hit(_in(dispatcher, destination.line), f"{destination.uri!r} is not a SIP URI", dispatcher.service)
            continue
        host, port = match.group("host").strip("[]"), int(match.group("port") or 5060)
        if not addresses:
            yield Hit(deployment.where("services", asterisk), f"service {asterisk!r} has no static ipv4_address for Kamailio's dispatcher to use", asterisk, (_in(dispatcher, destination.line),))
        elif host not in addresses:
            yield Hit(_in(dispatcher, destination.line), f"dispatcher sends to {host}, but Asterisk's address is {', '.join(sorted(addresses))}", dispatcher.service)
        if ports and port not in ports:
            yield Hit(_in(dispatcher, destination.line), f"dispatcher sends to port {port}, but Asterisk's pjsip transports bind {', '.join(map(str, sorted(ports)))}", dispatcher.service)


def _local_listen_problem(listen: Listen, static: set[str]) -> str | None:
    address = _ip(listen.address)
    if address is None:
        return f"listen {listen.address} is not an IP address; Kamailio needs the container's own address or 0.0.0.0"
    if address.is_unspecified or address.is_loopback or not static or listen.address in static:
        return None
    return f"listen {listen.address}:{listen.port} is not this container's address ({', '.join(sorted(static))}); Kamailio cannot bind it"


def _nginx(deployment: Deployment) -> tuple[MountedText, Directive] | None:
    mounted = deployment.edge_config("nginx.conf")
    if mounted is None:
        return None
    try:
        return mounted, parse_nginx(mounted.text)
    except NginxSyntaxError:
        return None


def _upstreams_to(root: Directive, hosts: set[str]) -> dict[str, list[tuple[Directive, int | None]]]:
    """upstream name -> its `server` directives that point at one of `hosts`."""
    found: dict[str, list[tuple[Directive, int | None]]] = {}
    for upstream in root.find("upstream"):
        for server in upstream.find("server"):
            if not server.args:
                continue
            host, port = _split_host_port(server.args[0])
            if host in hosts:
                found.setdefault(upstream.args[0] if upstream.args else "", []).append((server, port if port is not None else 80))
    return found


def _published_host_ports(deployment: Deployment, service: str, protocol: str) -> set[int]:
    ports: set[int] = set()
    for _, spec in _ports(deployment, service):
        if spec.protocol == protocol and spec.host_start is not None and spec.host_end is not None:
            ports.update(range(spec.host_start, spec.host_end + 1))
    return ports


def _published_tls_ports(deployment: Deployment, service: str, root: Directive) -> set[int]:
    """Host ports compose publishes for nginx's `listen ... ssl` ports: where browsers open wss://."""
    tls: set[int] = set()
    for listen in root.find("listen"):
        if not listen.args or "ssl" not in listen.args[1:]:
            continue
        address = listen.args[0]
        port = _split_host_port(address)[1] if ":" in address else (int(address) if address.isdigit() else None)
        if port is not None:
            tls.add(port)
    ports: set[int] = set()
    for _, spec in _ports(deployment, service):
        if spec.protocol == "tcp" and spec.host_start is not None and spec.container_start in tls:
            ports.add(spec.host_start)
    return ports


@rule(
    "OV306",
    "kamailio-listen-advertise",
    "error",
    "Kamailio must bind its own container address and advertise, on the sockets browsers use, the public address "
    "and a port compose publishes (its own, or nginx's HTTPS port when nginx proxies the WebSocket).",
    "DOMAIN.md s.3; Kamailio core listen/advertise",
)
def kamailio_listen(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    kamailio = _kamailio(deployment)
    if kamailio is None:
        return
    mounted, cfg = kamailio
    service = mounted.service
    static = _static_ips(deployment, service)
    if not cfg.listens:
        yield Hit(_in(mounted, 1), "kamailio.cfg has no listen: Kamailio binds every address and advertises container addresses", service)
    public = _external_media_address(deployment)
    front_ports = _published_host_ports(deployment, service, "tcp")
    nginx = _nginx(deployment)
    if nginx is not None and _upstreams_to(nginx[1], {service, *static}):
        front_ports |= _published_tls_ports(deployment, nginx[0].service, nginx[1])
    for listen in cfg.listens:
        at = _in(mounted, listen.line)
        if problem := _local_listen_problem(listen, static):
            yield Hit(at, problem, service)
        if listen.proto not in {"tcp", "tls", "ws", "wss"}:
            continue
        if listen.advertise_address is None:
            yield Hit(at, f"listen {listen.proto}:{listen.address}:{listen.port} has no advertise: browsers are told the container address", service)
            continue
        if public and listen.advertise_address != public[0]:
            yield Hit(at, f"Kamailio advertises {listen.advertise_address}, but Asterisk advertises {public[0]} (external_media_address)", service, (public[1],))
        if listen.advertise_port is not None and front_ports and listen.advertise_port not in front_ports:
            published = ", ".join(map(str, sorted(front_ports)))
            yield Hit(at, f"Kamailio advertises port {listen.advertise_port}, but browsers reach it on {published} (published by compose for Kamailio or nginx's TLS listener)", service)


def _identify_matches(section_value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in section_value.split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip().split(":")[0] if item.count(":") == 1 else item.strip(), strict=False))
        except ValueError:
            continue
    return networks


@rule(
    "OV307",
    "asterisk-trusts-kamailio",
    "error",
    "Asterisk must identify Kamailio by its static address (a pjsip identify), or every call from a browser is "
    "challenged or refused; Kamailio authenticates the browsers.",
    "Asterisk res_pjsip_endpoint_identifier_ip; DOMAIN.md s.3",
)
def asterisk_trusts_kamailio(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    kamailio = _kamailio(deployment)
    pjsip = deployment.config("pjsip.conf")
    if kamailio is None or pjsip is None:
        return
    mounted, cfg = kamailio
    addresses = {listen.address for listen in cfg.listens if listen.proto == "udp" and _ip(listen.address)} | _static_ips(deployment, mounted.service)
    addresses = {address for address in addresses if not _ip(address).is_unspecified}  # type: ignore[union-attr]
    if not addresses:
        return
    endpoints = {section.name for section in pjsip.conf.sections if (kind := section.get("type")) and kind.value == "endpoint"}
    for section in pjsip.conf.sections:
        kind = section.get("type")
        if not kind or kind.value != "identify":
            continue
        endpoint = section.get("endpoint")
        networks = [network for setting in section.get_all("match") for network in _identify_matches(setting.value)]
        ips = [ip for ip in map(_ip, addresses) if ip is not None]
        if endpoint and endpoint.value in endpoints and any(ip in network for ip in ips for network in networks):
            return
    yield Hit(_in(pjsip, 1), f"no pjsip identify matches Kamailio's address ({', '.join(sorted(addresses))}) to an endpoint", pjsip.service, (_in(mounted, 1),))


# --- nginx ----------------------------------------------------------------------------------------


def _proxied_upstream(location: Directive) -> str | None:
    proxy = location.first("proxy_pass")
    if proxy is None or not proxy.args:
        return None
    target = re.sub(r"^https?://", "", proxy.args[0]).split("/", 1)[0]
    return target


@rule(
    "OV308",
    "nginx-websocket-route",
    "error",
    "A WebSocket route (Kamailio's SIP over WebSocket, the app's websockets) needs HTTP/1.1 and the Upgrade/Connection "
    "headers passed on, and must reach a port the service listens on; otherwise the handshake fails.",
    "nginx WebSocket proxying docs; RFC 7118",
)
def nginx_websocket(deployment: Deployment, _: RuleContext) -> Iterator[Hit]:
    nginx = _nginx(deployment)
    if nginx is None:
        return
    mounted, root = nginx
    kamailio = _kamailio(deployment)
    websocket_hosts: dict[str, str] = {}
    for service in deployment.services:
        if service in WEBSOCKET_SERVICES or (kamailio and service == kamailio[0].service):
            websocket_hosts[service] = service
            for address in _static_ips(deployment, service):
                websocket_hosts[address] = service
    upstreams = _upstreams_to(root, set(websocket_hosts))
    if kamailio:
        kamailio_mounted, cfg = kamailio
        ws_ports = {listen.port for listen in cfg.listens if listen.proto in {"tcp", "ws"}}
        for servers in upstreams.values():
            for server, port in servers:
                host = _split_host_port(server.args[0])[0]
                if websocket_hosts.get(host) == kamailio_mounted.service and port not in ws_ports:
                    yield Hit(_in(mounted, server.line), f"nginx sends Kamailio's WebSocket to port {port}, but Kamailio listens on TCP {', '.join(map(str, sorted(p for p in ws_ports if p)))}", mounted.service, (_in(kamailio_mounted, 1),))
    for location in root.find("location"):
        upstream = _proxied_upstream(location)
        if upstream is None or upstream not in upstreams:
            continue
        headers = {
            directive.args[0].lower(): " ".join(directive.args[1:]).lower()
            for directive in (location.block or []) if directive.name == "proxy_set_header" and directive.args
        }
        version = location.first("proxy_http_version")
        missing = []
        if version is None or version.args[:1] != ("1.1",):
            missing.append("proxy_http_version 1.1")
        if "$http_upgrade" not in headers.get("upgrade", ""):
            missing.append("proxy_set_header Upgrade $http_upgrade")
        if "connection" not in headers:
            missing.append("proxy_set_header Connection (upgrade)")
        if missing:
            route = " ".join(location.args)
            yield Hit(_in(mounted, location.line), f"location {route} proxies WebSocket service {upstream!r} without {', '.join(missing)}", mounted.service)

