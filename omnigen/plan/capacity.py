"""RTP arithmetic: how many ports a number of calls needs, and where they go on the host.

The ports per call are catalog facts (catalog/media.py). rtpend must be odd so the last RTCP port is
inside the range; if rtpstart >= rtpend Asterisk silently falls back to
5000-31000, which would no longer be the published range.

Supervisors listening to a call (ChanSpy, barge, a 3-way conference) add one
channel each; video gives every channel a second RTP instance. Both factors
are profile keys (capacity.supervised_percent, capacity.video).

This module is also the one place that lays out the host's port space
(`port_plan`): every published port and range, placed so that no two overlap
and all fit 1024-65535, and checked against the host kind's port budget
(`budget_problem`). A layout that cannot exist raises CapacityError, which
feasibility.py turns into a keyed problem (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from omnigen.catalog import costs, hostkinds
from omnigen.catalog.media import ASTERISK_PORTS_PER_CALL, CHANNELS_PER_CALL, PORTS_PER_STREAM, RTPENGINE_SIDES_PER_CALL
from omnigen.errors import KeyedProblem
from omnigen.search import most_that_fits

if TYPE_CHECKING:
    from omnigen.inputs.profile import Profile

MAX_PORT = 65535


@dataclass(frozen=True)
class RtpRange:
    start: int
    end: int
    calls: int
    ports_needed: int
    headroom_percent: int
    # How ports_needed follows from the calls, for comments and `omnigen explain`.
    arithmetic: str = ""

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def ports_per_call(self) -> int:
        return ASTERISK_PORTS_PER_CALL


def with_headroom(ports: int, headroom_percent: int) -> int:
    """Ports plus headroom, rounded up to an even count so the range ends odd."""
    total = -(-ports * (100 + headroom_percent) // 100)
    return total + (total % 2)


def asterisk_range(start: int, calls: int, headroom_percent: int, supervised_percent: int = 0, video: bool = False) -> RtpRange:
    return asterisk_need(calls, headroom_percent, supervised_percent, video).at(start)


MIN_PORT = 1024


# --- Media needs per component (the per-call arithmetic: catalog/media.py) -----------------------


@dataclass(frozen=True)
class MediaNeed:
    """How many media ports one component needs for the calls, and why."""

    component: str  # "asterisk", "rtpengine"
    label: str  # what users call the range: "Asterisk RTP"
    calls: int
    channels: int  # media endpoints: Asterisk channels, rtpengine call sides
    channels_reason: str  # "2 per bridged call + 10% supervised"
    streams_per_channel: int  # 1 audio; 2 with video
    headroom_percent: int

    @property
    def ports_needed(self) -> int:
        return self.channels * self.streams_per_channel * PORTS_PER_STREAM

    @property
    def size(self) -> int:
        return with_headroom(self.ports_needed, self.headroom_percent)

    @property
    def arithmetic(self) -> str:
        streams = " x 2 streams (audio + video)" if self.streams_per_channel == 2 else ""
        return (
            f"{self.calls} calls -> {self.channels} channels ({self.channels_reason}){streams} x {PORTS_PER_STREAM} ports "
            f"(RTP + RTCP) = {self.ports_needed}, + {self.headroom_percent}% headroom = {self.size}"
        )

    def at(self, start: int) -> RtpRange:
        return RtpRange(
            start=start,
            end=start + self.size - 1,
            calls=self.calls,
            ports_needed=self.ports_needed,
            headroom_percent=self.headroom_percent,
            arithmetic=self.arithmetic,
        )


def asterisk_need(calls: int, headroom_percent: int, supervised_percent: int = 0, video: bool = False) -> MediaNeed:
    """Asterisk bridges each call (direct_media=no): caller + agent channel, plus one per supervised call."""
    supervised = math.ceil(calls * supervised_percent / 100)
    reason = f"{CHANNELS_PER_CALL} per bridged call" + (f" + {supervised} supervised ({supervised_percent}%)" if supervised_percent else "")
    return MediaNeed("asterisk", "Asterisk RTP", calls, CHANNELS_PER_CALL * calls + supervised, reason, 2 if video else 1, headroom_percent)


def rtpengine_need(calls: int, headroom_percent: int, video: bool = False) -> MediaNeed:
    """rtpengine relays each call between two sides, each an RTP + RTCP pair."""
    reason = f"{RTPENGINE_SIDES_PER_CALL} sides per relayed call"
    return MediaNeed("rtpengine", "rtpengine media", calls, RTPENGINE_SIDES_PER_CALL * calls, reason, 2 if video else 1, headroom_percent)


# --- Placing ranges in the port space ------------------------------------------------------------


class CapacityError(Exception):
    """A port layout that cannot exist; feasibility.py reports its problem at the key's line (exit 2)."""

    def __init__(self, key: str, message: str) -> None:
        self.problem = KeyedProblem(key, message)
        super().__init__(f"{key}: {message}")

    @property
    def key(self) -> str:
        return self.problem.key

    @property
    def message(self) -> str:
        return self.problem.message


class CapacityProblems(CapacityError):
    """Several independent refusals found in one pass, reported together so the user fixes them in
    one edit; as a CapacityError it reads as the first of them."""

    def __init__(self, problems: list[CapacityError]) -> None:
        self.refusals = tuple(problems)
        super().__init__(problems[0].key, problems[0].message)

    @property
    def problems(self) -> tuple[KeyedProblem, ...]:
        return tuple(refusal.problem for refusal in self.refusals)


@dataclass(frozen=True)
class RangeRequest:
    """A media range to place: candidate starts in order of preference; the first that fits wins."""

    need: MediaNeed
    key: str  # the profile key that moves it, for error messages
    starts: tuple[int, ...]


def _span(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def _why_not(
    request: RangeRequest, start: int, placed: Mapping[str, RtpRange], reserved: Mapping[int, str], low: int, high: int
) -> str | None:
    need = request.need
    end = start + need.size - 1
    if start % 2:
        return f"the {need.label} range must start on an even port (got {start})"
    if start < low:
        return f"the {need.label} range {_span(start, end)} starts below {low}"
    if end > high:
        if need.size > high - low + 1:
            return (
                f"{need.calls} calls need {need.size} {need.label} ports ({need.ports_needed} + {need.headroom_percent}% headroom), "
                f"more than the {high - low + 1} ports of {low}-{high}; lower capacity.concurrent_calls"
            )
        latest = high + 1 - need.size
        latest -= latest % 2
        return (
            f"{need.calls} calls need {need.size} {need.label} ports ({need.ports_needed} + {need.headroom_percent}% headroom), "
            f"so a range starting at {start} ends at {end}, past {high}; lower {request.key} to at most {latest}"
        )
    for port, key in sorted(reserved.items()):
        if start <= port <= end:
            return f"the {need.label} range {start}-{end} contains {key} = {port}; move {request.key} or the port"
    for other in placed.values():
        if start <= other.end and other.start <= end:
            return f"the {need.label} range {start}-{end} overlaps another media range {other.start}-{other.end}; move {request.key}"
    return None


def place_ranges(
    requests: Iterable[RangeRequest], reserved: Mapping[int, str], low: int = MIN_PORT, high: int = MAX_PORT
) -> dict[str, RtpRange]:
    """Place each request at its first candidate start that is even, inside [low, high], clear of the
    `reserved` single ports (port -> profile key) and of the ranges placed before it.

    Raises CapacityError (exit 2) naming the key to change when a request has no such start.
    """
    placed: dict[str, RtpRange] = {}
    for request in requests:
        reasons = []
        for start in request.starts:
            reason = _why_not(request, start, placed, reserved, low, high)
            if reason is None:
                placed[request.need.component] = request.need.at(start)
                break
            reasons.append(reason)
        else:
            raise CapacityError(request.key, "; and ".join(dict.fromkeys(reasons)) or f"no start offered for {request.need.label}")
    return placed


# --- The host's port space -----------------------------------------------------------------------

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PortUse:
    """One published host port or range (one `ports:` entry)."""

    service: str
    purpose: str
    key: str  # the profile key that chose it
    host_ip: str
    start: int
    end: int
    protocol: str
    # The plan.LISTEN name of the container port; None when it equals the host port.
    listen: str | None = None
    # The port the profile asked for when host.low_ports = "remap" moved it.
    remapped_from: int | None = None

    @property
    def count(self) -> int:
        return self.end - self.start + 1

    @property
    def host_ip_explicit(self) -> bool:
        return bool(self.host_ip)


@dataclass(frozen=True)
class PortPlan:
    """Every host port the deployment publishes, and the media arithmetic behind the ranges."""

    needs: tuple[MediaNeed, ...]
    ranges: dict[str, RtpRange]
    uses: tuple[PortUse, ...]
    sip_port: int  # Asterisk's SIP port after host.low_ports remapping
    http_port: int
    https_port: int
    published_media: frozenset[str] = field(default_factory=frozenset)  # components whose range is published

    @property
    def published(self) -> int:
        return sum(use.count for use in self.uses)

    @property
    def explicit(self) -> int:
        return sum(use.count for use in self.uses if use.host_ip_explicit)

    def cost(self, userland_proxy: bool) -> costs.PublishingCost:
        return costs.publishing_cost(self.explicit, self.published - self.explicit, userland_proxy)


def _host_port(profile: Profile, key: str, port: int) -> tuple[int, int | None]:
    """The host port actually published for `port`, and the original when host.low_ports remapped it."""
    kind = profile.host.kind
    lowest = hostkinds.facts(kind).unprivileged_port_start
    if port >= lowest or profile.host.low_ports == "allow":
        return port, None
    if profile.host.low_ports == "remap":
        return port + hostkinds.REMAP_OFFSET, port
    raise CapacityError(
        key,
        f"{kind} Docker cannot publish host ports below {lowest}: it binds them as an ordinary user, and the host's "
        f"net.ipv4.ip_unprivileged_port_start is {lowest} unless changed (got {port}); set {key} to {port + hostkinds.REMAP_OFFSET}, "
        f'or host.low_ports = "remap" to move every port below {lowest} up by {hostkinds.REMAP_OFFSET}, '
        f'or host.low_ports = "allow" after lowering that sysctl on the host (`omnigen doctor` reads it)',
    )


def port_plan(profile: Profile) -> PortPlan:
    """Lay out every published host port of the profile. Raises CapacityError when no layout exists."""
    bind = str(profile.network.bind_ip)
    capacity = profile.capacity
    publishes_asterisk = profile.network.mode == "bridge"
    calls = capacity.concurrent_calls

    singles: list[tuple[str, int, int | None]] = []  # (key, host port, remapped from)
    too_low: list[CapacityError] = []  # every refused low port at once, not one per run
    for key, port in (("ports.sip", profile.ports.sip), ("ports.http", profile.ports.http), ("ports.https", profile.ports.https)):
        # In a LAN mode Asterisk listens on its own address: SIP is not a host port.
        if key == "ports.sip" and not publishes_asterisk:
            singles.append((key, port, None))
            continue
        try:
            singles.append((key, *_host_port(profile, key, port)))
        except CapacityError as refusal:
            too_low.append(refusal)
    if too_low:
        raise too_low[0] if len(too_low) == 1 else CapacityProblems(too_low)
    seen: dict[int, str] = {}
    for key, port, original in singles:
        described = f"{key} (remapped from {original} by host.low_ports)" if original is not None else key
        if port in seen:
            raise CapacityError(key, f"host port {port} is used by both {seen[port]} and {described}; give each its own port")
        seen[port] = described
    sip, http, https = (port for _, port, _ in singles)
    reserved = {port: key for key, port, _ in singles}

    internal: list[PortUse] = []
    if profile.network.expose_internal:
        for service, purpose, port, listen in (
            ("postgresql", "PostgreSQL (debug)", 5432, "postgresql"),
            ("redis", "Redis (debug)", 6379, "redis"),
            ("minio", "MinIO console (debug)", 9001, "minio-console"),
        ):
            if port in seen:
                # Even on another address: with bind_ip 0.0.0.0 the two would collide, and one
                # number for two services misleads whoever reads the port list.
                owner = reserved[port]
                raise CapacityError(owner, f"host port {port} is used by both {seen[port]} and network.expose_internal ({purpose}); give {owner} another port")
            internal.append(PortUse(service, purpose, "network.expose_internal", LOOPBACK, port, port, "tcp", listen))
            reserved.setdefault(port, "network.expose_internal")

    asterisk = asterisk_need(calls, capacity.headroom_percent, capacity.supervised_percent, capacity.video)
    requests = [RangeRequest(asterisk, "rtp.start", (profile.rtp.start,))]
    needs = [asterisk]
    if profile.components.webrtc:
        relay = rtpengine_need(calls, capacity.headroom_percent, capacity.video)
        needs.append(relay)
        # Right after Asterisk's range, else right before it (both sizes are even, so both starts are).
        after = profile.rtp.start + asterisk.size
        requests.append(RangeRequest(relay, "rtp.start", (after, profile.rtp.start - relay.size)))
    ranges = place_ranges(requests, reserved)

    uses: list[PortUse] = []
    remapped = {key: original for key, _, original in singles}
    rtp = ranges["asterisk"]
    if publishes_asterisk:
        uses += [
            PortUse("asterisk", "SIP", "ports.sip", bind, sip, sip, "udp", remapped_from=remapped["ports.sip"]),
            PortUse("asterisk", "SIP", "ports.sip", bind, sip, sip, "tcp", remapped_from=remapped["ports.sip"]),
            PortUse("asterisk", "RTP media", "rtp.start", bind, rtp.start, rtp.end, "udp"),
        ]
    uses += [
        PortUse("nginx", "HTTP (redirect)", "ports.http", bind, http, http, "tcp", "nginx-http", remapped["ports.http"]),
        PortUse("nginx", "HTTPS web UI", "ports.https", bind, https, https, "tcp", "nginx-https", remapped["ports.https"]),
    ]
    if "rtpengine" in ranges:
        relay_range = ranges["rtpengine"]
        uses.append(PortUse("rtpengine", "WebRTC media (rtpengine)", "rtp.start", bind, relay_range.start, relay_range.end, "udp"))
    uses += internal
    published_media = frozenset(use.service for use in uses if use.service in ranges and use.start != use.end)
    return PortPlan(tuple(needs), ranges, tuple(uses), sip, http, https, published_media)


# --- The host kind's port budget -----------------------------------------------------------------


def _with_calls(profile: Profile, calls: int) -> Profile:
    return profile.model_copy(update={"capacity": profile.capacity.model_copy(update={"concurrent_calls": calls})})


def max_calls_within(profile: Profile, userland_proxy: bool, upper: int | None = None) -> int:
    """The most calls, up to `upper` (default: the profile's), whose published ports stay within
    the host kind's budget; 0 if not even one call fits."""
    kind = profile.host.kind

    def fits(calls: int) -> bool:
        try:
            layout = port_plan(_with_calls(profile, calls))
        except CapacityError:
            return False
        return hostkinds.within(kind, layout.cost(userland_proxy))

    high = (profile.capacity.concurrent_calls if upper is None else upper) + 1
    return most_that_fits(1, high, fits) if fits(1) else 0


def _breakdown(layout: PortPlan) -> str:
    totals: dict[str, int] = {}
    for use in layout.uses:
        label = f"{use.service} {use.purpose}"
        if use.start != use.end:
            label += f" {use.start}-{use.end}/{use.protocol}"
        totals[label] = totals.get(label, 0) + use.count
    return ", ".join(f"{label}: {count}" for label, count in totals.items())


def describe_cost(cost: costs.PublishingCost) -> str:
    if not cost.proxies:
        return f"no docker-proxy processes, ~{cost.start_seconds:.0f} s of firewall rule insertion to start"
    return f"{cost.proxies} docker-proxy processes, ~{cost.memory_mib:.0f} MiB PSS and ~{cost.start_seconds:.0f} s to start"


def budget_problem(profile: Profile, layout: PortPlan) -> KeyedProblem | None:
    """Why the published ports are too many for this host kind (with the numbers and the ways out), or None."""
    kind = profile.host.kind
    proxy = hostkinds.effective_userland_proxy(kind, profile.host.userland_proxy)
    cost = layout.cost(proxy)
    if hostkinds.within(kind, cost):
        return None
    facts = hostkinds.facts(kind)
    budget = hostkinds.port_budget(kind, proxy)
    calls = profile.capacity.concurrent_calls
    ways: list[str] = []
    if proxy and facts.userland_proxy_optional:
        off = hostkinds.port_budget(kind, False)
        if hostkinds.within(kind, layout.cost(False)):
            ways.append(
                f'disable the userland proxy (`"userland-proxy": false` in /etc/docker/daemon.json, restart dockerd) and set '
                f"host.userland_proxy = false (budget then {off.describe()}; this deployment: {describe_cost(layout.cost(False))})"
            )
    if profile.network.mode == "bridge" and facts.lan_modes != "refused":
        without_asterisk = sum(use.count for use in layout.uses if use.service != "asterisk")
        caveat = " (check the caveats for this host kind in docs/capacity.md)" if facts.lan_modes == "warn" else ""
        ways.append(
            f'set network.mode = "ipvlan" with network.lan (parent, subnet, gateway, address) so Asterisk\'s SIP and RTP are '
            f"reached on its own LAN address and not published (published ports then {without_asterisk}){caveat}"
        )
    most = max_calls_within(profile, proxy)
    if most:
        ways.append(f"lower capacity.concurrent_calls to at most {most}")
    fixes = "; or ".join(ways) if ways else "this host kind cannot carry this capacity: deploy on a server"
    setting = "on" if proxy else "off"
    return KeyedProblem(
        "capacity.concurrent_calls",
        f"{calls} calls publish {layout.published} host ports ({_breakdown(layout)}): on {kind} with "
        f"userland-proxy {setting} an estimated {describe_cost(cost)} (from measured figures, docs/capacity.md), over the "
        f"budget of {budget.describe()} (got {calls}); {fixes}"
    )


# --- Bandwidth -----------------------------------------------------------------------------------

PACKET_MS = 20  # RTP packetisation: 50 packets a second
# Per packet on the wire: IPv4 20 + UDP 8 + RTP 12 bytes, plus Ethernet header 14 + FCS 4.
IP_UDP_RTP_BYTES = 20 + 8 + 12
ETHERNET_BYTES = 14 + 4
DEFAULT_OPUS_KBPS = 32  # Opus payload bitrate; 32 kbit/s is wideband voice at 20 ms


@dataclass(frozen=True)
class Codec:
    name: str
    payload_kbps: float

    def stream_kbps(self, packet_ms: int = PACKET_MS) -> float:
        """kbit/s of one RTP stream in one direction, headers and Ethernet framing included."""
        packets_per_second = 1000 / packet_ms
        payload_bytes = self.payload_kbps * 1000 / 8 / packets_per_second
        return (payload_bytes + IP_UDP_RTP_BYTES + ETHERNET_BYTES) * 8 * packets_per_second / 1000


def codecs(opus_kbps: float = DEFAULT_OPUS_KBPS) -> tuple[Codec, ...]:
    return (Codec("G.711", 64), Codec("G.729", 8), Codec("Opus", opus_kbps))


# What a port a host publishes on its private address for the other hosts' clients is for.
PEER_PURPOSE = "for the other hosts"


# --- Multi-host profiles: one port layout per host -----------------------------------------------

ANY_ADDRESS = "0.0.0.0"


@dataclass(frozen=True)
class HostPorts:
    """One host's published ports: as its compose bundle publishes them, and as stack.yml does.

    The bundle names a host address on every port (public ports on 0.0.0.0, the data services
    other hosts use on the host's private address); Swarm's host-mode ports cannot name one, and
    the stack publishes no data service (the other hosts reach them over the overlay network).
    """

    host: str
    index: int
    bundle: PortPlan
    stack: PortPlan


def _host_key(profile: Profile, index: int, field_name: str, default_key: str) -> str:
    """The profile key that sets a per-host value: the host's own key when given, else the profile default."""
    return f"hosts.{index}.{field_name}" if getattr(profile.hosts[index], field_name) is not None else default_key


def host_port_plan(profile: Profile, index: int, calls: int | None = None) -> HostPorts:
    """Lay out the published ports of `profile.hosts[index]` (optionally with another share of calls).
    Raises CapacityError when no layout exists."""
    from omnigen.plan import placement  # placement imports nothing from here; kept local to stay import-light

    host = profile.hosts[index]
    capacity = profile.capacity
    address = str(host.address)
    singles: list[tuple[str, int, PortUse]] = []  # (key, host port, use)
    media: list[RangeRequest] = []
    needs: list[MediaNeed] = []
    if "voice" in host.roles:
        sip = host.sip_port or profile.ports.sip
        sip_key = _host_key(profile, index, "sip_port", "ports.sip")
        for protocol in ("udp", "tcp"):
            singles.append((sip_key, sip, PortUse("asterisk", "SIP", sip_key, ANY_ADDRESS, sip, sip, protocol)))
        need = asterisk_need(calls or host.calls or 1, capacity.headroom_percent, capacity.supervised_percent, capacity.video)
        needs.append(need)
        media.append(RangeRequest(need, _host_key(profile, index, "rtp_start", "rtp.start"), (host.rtp_start or profile.rtp.start,)))
    if "edge" in host.roles:
        for key, port, purpose, listen in (
            ("ports.http", profile.ports.http, "HTTP (redirect)", "nginx-http"),
            ("ports.https", profile.ports.https, "HTTPS web UI", "nginx-https"),
        ):
            singles.append((key, port, PortUse("nginx", purpose, key, ANY_ADDRESS, port, port, "tcp", listen)))
    for key in placement.peer_published(profile, host):
        port = placement.PEER_PORTS[key]
        use = PortUse(placement.peer_service(key), PEER_PURPOSE, f"hosts.{index}.roles", address, port, port, "tcp", key)
        singles.append((f"hosts.{index}.roles", port, use))

    seen: dict[int, str] = {}
    for key, port, use in singles:
        if port in seen and seen[port] != key:
            raise CapacityError(key, f"host port {port} of {host.name} is used by both {seen[port]} and {key} ({use.service}); give each its own port")
        seen.setdefault(port, key)
    ranges = place_ranges(media, {port: key for key, port, _ in singles})

    bundle_uses = [use for _, _, use in singles if use.service in ("asterisk",)]
    if "asterisk" in ranges:
        rtp = ranges["asterisk"]
        bundle_uses.append(PortUse("asterisk", "RTP media", media[0].key, ANY_ADDRESS, rtp.start, rtp.end, "udp"))
    bundle_uses += [use for _, _, use in singles if use.service not in ("asterisk",)]
    published_media = frozenset(use.service for use in bundle_uses if use.service in ranges and use.start != use.end)
    http = profile.ports.http if "edge" in host.roles else 0
    https = profile.ports.https if "edge" in host.roles else 0
    sip_port = (host.sip_port or profile.ports.sip) if "voice" in host.roles else 0
    bundle = PortPlan(tuple(needs), ranges, tuple(bundle_uses), sip_port, http, https, published_media)
    stack_uses = tuple(
        PortUse(use.service, use.purpose, use.key, "", use.start, use.end, use.protocol, use.listen)
        for use in bundle_uses
        # Swarm services reach each other over the overlay: only the public ports go into the stack.
        if use.service in ("asterisk", "nginx") and use.purpose != PEER_PURPOSE
    )
    stack = PortPlan(tuple(needs), ranges, stack_uses, sip_port, http, https, published_media)
    return HostPorts(host.name, index, bundle, stack)


def host_budget_problem(profile: Profile, ports: HostPorts) -> KeyedProblem | None:
    """Why one host's published ports are too many for its kind, with the numbers and the ways out, or None."""
    host = profile.hosts[ports.index]
    kind = host.host_kind(profile.host.kind)
    proxy = hostkinds.effective_userland_proxy(kind, host.proxy(profile.host.userland_proxy))
    worst = max((ports.bundle, ports.stack), key=lambda layout: (layout.cost(proxy).memory_mib, layout.cost(proxy).start_seconds))
    cost = worst.cost(proxy)
    if hostkinds.within(kind, cost):
        return None
    where = "stack.yml (Swarm's host-mode ports name no address: IPv4 and IPv6)" if worst is ports.stack else f"hosts/{host.name}/"
    key = f"hosts.{ports.index}.calls" if "voice" in host.roles else f"hosts.{ports.index}.roles"
    ways: list[str] = []
    if proxy and hostkinds.facts(kind).userland_proxy_optional:
        off = hostkinds.port_budget(kind, False)
        ways.append(
            f'disable the userland proxy on {host.name} (`"userland-proxy": false` in /etc/docker/daemon.json, restart dockerd) and '
            f"set hosts.{ports.index}.userland_proxy = false (budget then {off.describe()})"
        )
    if "voice" in host.roles and host.calls:

        def fits(calls: int) -> bool:
            try:
                layouts = host_port_plan(profile, ports.index, calls)
            except CapacityError:
                return False
            return all(hostkinds.within(kind, layout.cost(proxy)) for layout in (layouts.bundle, layouts.stack))

        if most := most_that_fits(0, host.calls, fits):
            ways.append(f"lower hosts.{ports.index}.calls to at most {most} and give the other calls to another voice host")
    fixes = "; or ".join(ways) if ways else f"move roles off {host.name}"
    setting = "on" if proxy else "off"
    return KeyedProblem(
        key,
        f"{host.name} publishes {worst.published} host ports ({_breakdown(worst)}) in {where}: on {kind} with "
        f"userland-proxy {setting} an estimated {describe_cost(cost)} (from measured figures, docs/capacity.md), over the "
        f"budget of {hostkinds.port_budget(kind, proxy).describe()}; {fixes}"
    )


def shared_address_problem(profile: Profile, layouts: Mapping[str, HostPorts]) -> KeyedProblem | None:
    """Two hosts behind one public address must not publish the same port there: a NAT forwards a port to one host."""
    from omnigen.plan import placement

    by_address: dict[str, list[int]] = {}
    for index, host in enumerate(profile.hosts):
        if {"voice", "edge"} & set(host.roles):
            by_address.setdefault(str(placement.advertised(host)), []).append(index)
    for address, indexes in by_address.items():
        claimed: list[tuple[int, PortUse]] = []
        for index in indexes:
            for use in layouts[profile.hosts[index].name].stack.uses:
                for earlier_index, earlier in claimed:
                    if earlier_index != index and earlier.protocol == use.protocol and earlier.start <= use.end and use.start <= earlier.end:
                        first, second = profile.hosts[earlier_index], profile.hosts[index]
                        suggestion = ""
                        if use.start != use.end and earlier.start != earlier.end:
                            free = earlier.end + 1 + (earlier.end + 1) % 2
                            suggestion = f" (the RTP range could start at {free})"
                        # The key to change is the later host's own, even when it is not written yet (a default).
                        field_name = "rtp_start" if use.start != use.end else "sip_port" if use.service == "asterisk" else None
                        key = f"hosts.{index}.{field_name}" if field_name else use.key
                        return KeyedProblem(
                            key,
                            f"{first.name} and {second.name} both advertise {address} and both publish "
                            f"{_span(max(use.start, earlier.start), min(use.end, earlier.end))}/{use.protocol} there, but an "
                            f"address forwards a port to one host; give hosts.{index} its own public_ip, or its own sip_port "
                            f"and rtp_start{suggestion}"
                        )
                claimed.append((index, use))
    return None
