"""What a deployment publishes and costs, computed before anything runs (`omnigen explain`).

`explain_data` returns plain JSON-ready data (it is what `--format json` prints
and what the snapshots pin); `explain_tables` lays the same data out as titled
tables for the terminal. Every number comes from the plan, capacity.py or the
measured figures in costs.py; nothing is computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omnigen.catalog import costs, hostkinds
from omnigen.inputs.profile import Profile
from omnigen.plan.capacity import DEFAULT_OPUS_KBPS, PACKET_MS, PortPlan, codecs, describe_cost
from omnigen.plan.plan import Plan
from omnigen.plan.sizing import Sizing

if TYPE_CHECKING:
    from rich.console import Console

ESTIMATE_NOTE = (
    "estimates from the measured figures of {source} ({date}; {setup}); "
    "another daemon version, kernel or storage driver changes the numbers"
)


def _round(value: float, digits: int = 1) -> float:
    return round(value + 0.0, digits)


def _media(layout: PortPlan) -> list[dict[str, Any]]:
    rows = []
    for need in layout.needs:
        placed = layout.ranges[need.component]
        rows.append(
            {
                "component": need.component,
                "label": need.label,
                "calls": need.calls,
                "channels": need.channels,
                "channels_reason": need.channels_reason,
                "streams_per_channel": need.streams_per_channel,
                "ports_needed": need.ports_needed,
                "headroom_percent": need.headroom_percent,
                "ports": placed.size,
                "ports_per_call": _round(placed.size / need.calls, 2),
                "start": placed.start,
                "end": placed.end,
                "published": need.component in layout.published_media,
                "arithmetic": need.arithmetic,
            }
        )
    return rows


def _span(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def _published(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "service": port.service,
            "purpose": port.purpose,
            "host_ip": port.host_ip,
            "host_ports": _span(port.host_start, port.host_end),
            "container_ports": _span(port.container_start, port.container_end),
            "protocol": port.protocol,
            "count": port.count,
        }
        for port in plan.all_published
    ]


def _costs(profile: Profile, plan: Plan) -> dict[str, Any]:
    kind = profile.host.kind
    facts = hostkinds.facts(kind)
    explicit = sum(port.count for port in plan.all_published if port.host_ip)
    implicit = sum(port.count for port in plan.all_published) - explicit
    declared = profile.host.userland_proxy
    settings = []
    for proxy in (True, False):
        effective = hostkinds.effective_userland_proxy(kind, proxy)
        cost = costs.publishing_cost(explicit, implicit, effective)
        budget = hostkinds.port_budget(kind, proxy)
        note = ""
        if proxy != effective:
            note = facts.userland_proxy_reason
        settings.append(
            {
                "userland_proxy": proxy,
                "declared": proxy == declared,
                "possible": hostkinds.userland_proxy_refusal(kind, proxy) is None,
                "docker_proxy_processes": cost.proxies,
                "memory_mib": _round(cost.memory_mib),
                "start_seconds": _round(cost.start_seconds),
                "summary": describe_cost(cost),
                "budget_ports": budget.ports,
                "within_budget": hostkinds.within(kind, cost),
                "note": note,
            }
        )
    source = {row.source for row in costs.MEASUREMENTS if row.setup == costs.PLANNING_SETUP}
    dates = sorted({row.measured for row in costs.MEASUREMENTS if row.setup == costs.PLANNING_SETUP})
    return {
        "host_kind": kind,
        "limits": {
            "docker_proxy_memory_mib": facts.proxy_memory_mib,
            "start_seconds": facts.start_seconds,
            "reason": facts.budget_reason,
        },
        "mib_per_docker_proxy": _round(costs.mib_per_proxy(), 2),
        "note": ESTIMATE_NOTE.format(source="; ".join(sorted(source)), date=", ".join(dates), setup=costs.PLANNING_SETUP),
        "settings": settings,
    }


def _bandwidth(layout: PortPlan, opus_kbps: float) -> dict[str, Any]:
    asterisk = next(need for need in layout.needs if need.component == "asterisk")
    legs = 2 * asterisk.calls  # each bridged call: caller leg + agent leg
    channels = asterisk.channels  # plus a leg per supervisor listening in
    rows = []
    for codec in codecs(opus_kbps):
        per_stream = codec.stream_kbps()
        rows.append(
            {
                "codec": codec.name,
                "payload_kbps": _round(codec.payload_kbps),
                "stream_kbps": _round(per_stream),
                "calls_mbps": _round(legs * per_stream / 1000, 2),
                "with_supervisors_mbps": _round(channels * per_stream / 1000, 2),
            }
        )
    return {
        "packet_ms": PACKET_MS,
        "legs": legs,
        "legs_with_supervisors": channels,
        "note": (
            "each direction (in and out at the same time), per stream: RTP/UDP/IPv4 headers and Ethernet framing "
            f"included, {PACKET_MS} ms packets, no RTCP or VAD"
            + ("; video is not included (it depends on resolution and bitrate)" if asterisk.streams_per_channel > 1 else "")
        ),
        "codecs": rows,
    }


ORIGINS = {
    "registry": "pulled (images.{key})",
    "checkout": "built from the OmniVoIP checkout (build.source)",
    "override": "built from build.{key}",
}


def _images(plan: Plan) -> list[dict[str, Any]]:
    """Every image and where it comes from (docs/application.md)."""
    return [
        {"key": key, "image": image.image, "origin": image.origin, "source": ORIGINS[image.origin].format(key=key), "context": image.build}
        for key, image in plan.images.items()
    ]


def _application(plan: Plan) -> list[dict[str, Any]]:
    """The image defects the deployment works around, and those it cannot (docs/application.md)."""
    return [
        {"services": note.service, "problem": note.problem, "reference": note.reference, "remedy": note.remedy, "worked_around": note.worked_around}
        for note in plan.image_notes
    ]


def _application_tables(data: dict[str, Any]) -> tuple[Table, ...]:
    # One wrapped column each: image names and file paths are long words no narrow column can hold.
    images = Table(
        "Images and where they come from",
        ("image: source",),
        tuple((f"{row['image']}: {row['source']}" + (f", context {row['context']}" if row["context"] else ""),) for row in data["images"]),
    )
    notes = Table(
        "The application's images: workarounds and upstream defects (docs/application.md)",
        ("services: problem (reference) -> what the deployment does",),
        tuple(
            (
                f"{row['services']}: {row['problem']} ({row['reference']}) -> "
                + (row["remedy"] if row["worked_around"] else f"NOT worked around: {row['remedy']}"),
            )
            for row in data["application"]
        ),
    )
    return (images, notes)


def explain_data(profile: Profile, plan: Plan, layout: PortPlan | None, opus_kbps: float = DEFAULT_OPUS_KBPS) -> dict[str, Any]:
    """What explain prints. `layout` is the single-host port layout; a multi-host plan carries one per host."""
    if plan.cluster is not None:
        return _cluster_data(profile, plan, opus_kbps)
    assert layout is not None, "a single-host profile has one port layout"
    lan = plan.network.lan
    return {
        "project": plan.project,
        "host": {
            "kind": profile.host.kind,
            "label": hostkinds.facts(profile.host.kind).label,
            "userland_proxy": profile.host.userland_proxy,
        },
        "network": {
            "mode": plan.network.mode,
            "bind_ip": plan.network.bind_ip,
            "advertised_ip": plan.network.advertised_ip,
            "lan": None if lan is None else {"driver": lan.driver, "parent": lan.parent, "subnet": lan.subnet, "address": lan.address},
        },
        "capacity": {
            "concurrent_calls": profile.capacity.concurrent_calls,
            "headroom_percent": profile.capacity.headroom_percent,
            "supervised_percent": profile.capacity.supervised_percent,
            "video": profile.capacity.video,
        },
        "media": _media(layout),
        "published": _published(plan),
        "published_total": sum(port.count for port in plan.all_published),
        "publishing_cost": _costs(profile, plan),
        "bandwidth": _bandwidth(layout, opus_kbps),
        "sizing": _sizing(plan.sizing),
        "firewall": _firewall(plan),
        "warnings": [{"key": warning.key, "message": warning.message} for warning in plan.warnings],
        "images": _images(plan),
        "application": _application(plan),
    }


def _firewall(plan: Plan) -> dict[str, Any] | None:
    firewall = plan.firewall
    if firewall is None:
        return None
    return {
        "openings": [
            {
                "protocol": opening.protocol,
                "ports": opening.ports,
                "address": opening.address,
                "service": opening.service,
                "purpose": opening.purpose,
                "from": "network.sip_allow" if opening.sip and firewall.sip_allow else "anywhere",
                "path": "direct to the LAN address (not published)" if opening.direct else "published by Docker",
            }
            for opening in firewall.openings
        ],
        "forwards": [
            {"protocol": forward.protocol, "ports": forward.ports, "public_ip": forward.public_ip, "target": forward.target, "purpose": forward.purpose}
            for forward in firewall.forwards
        ],
        "sip_allow": list(firewall.sip_allow),
        "nftables": "firewall/nftables.conf",
    }


def _firewall_tables(firewall: dict[str, Any]) -> tuple[Table, ...]:
    openings = Table(
        "Firewall / security group: open exactly these (inbound)",
        ("protocol", "port(s)", "to address", "from", "service", "how"),
        tuple(
            (row["protocol"], row["ports"], "any host address" if row["address"] == "0.0.0.0" else row["address"], row["from"], f"{row['service']}: {row['purpose']}", row["path"])
            for row in firewall["openings"]
        ),
        (
            f"{firewall['nftables']} applies the published ones on this host (nft -f; docs/firewall.md)",
            *(("network.sip_allow: " + ", ".join(firewall["sip_allow"]),) if firewall["sip_allow"] else ()),
        ),
    )
    if not firewall["forwards"]:
        return (openings,)
    forwards = Table(
        "1:1 forwards from the public address (NAT, cloud or router): same port numbers",
        ("protocol", "port(s)", "from", "to", "purpose"),
        tuple((row["protocol"], row["ports"], row["public_ip"], row["target"], row["purpose"]) for row in firewall["forwards"]),
        ("RTP must keep its port number: SDP advertises the public address with the container's port",),
    )
    return (openings, forwards)


def _sizing(sized: Sizing | None) -> dict[str, Any] | None:
    if sized is None:
        return None
    return {
        "host_cpus": sized.host.cpus,
        "host_cpus_source": sized.host.cpus_source,
        "host_memory_mib": sized.host.memory_mib,
        "host_memory_source": sized.host.memory_source,
        "containers": sized.containers,
        "cpus_limits": sized.cpus_limits,
        "cpus_reservations": sized.cpus_reservations,
        "largest_cpus_limit": max(size.cpus_limit for size in sized.services.values()),
        "memory_limits_mib": sized.memory_limits_mib,
        "memory_reservations_mib": sized.memory_reservations_mib,
        "docker_proxy_mib": _round(sized.docker_proxy_mib),
        "system_mib": sized.system_mib,
        "memory_needed_mib": sized.memory_needed_mib,
        "services": [
            {
                "service": name,
                "replicas": size.replicas,
                "cpus_limit": size.cpus_limit,
                "cpus_reservation": size.cpus_reservation,
                "memory_limit_mib": size.memory_limit_mib,
                "memory_reservation_mib": size.memory_reservation_mib,
            }
            for name, size in sized.services.items()
        ],
    }


def _sizing_table(sizing: dict[str, Any]) -> Table:
    cpus, memory = sizing["host_cpus"], sizing["host_memory_mib"]
    rows = [
        (
            row["service"],
            str(row["replicas"]),
            f"{row['cpus_limit']:g}",
            f"{row['cpus_reservation']:g}",
            f"{row['memory_limit_mib']}",
            f"{row['memory_reservation_mib']}",
        )
        for row in sizing["services"]
    ]
    rows.append(
        (
            f"total ({sizing['containers']} containers)",
            "",
            f"{sizing['cpus_limits']:g}",
            f"{sizing['cpus_reservations']:g}",
            str(sizing["memory_limits_mib"]),
            str(sizing["memory_reservations_mib"]),
        )
    )
    rows.append(("host", "", f"{cpus:g}", f"{cpus:g}", str(memory), str(memory)))
    return Table(
        f"Sizing against the host ({cpus:g} CPUs from {sizing['host_cpus_source']}, {memory} MiB from {sizing['host_memory_source']})",
        ("service", "replicas", "cpus limit", "cpus reserved", "memory limit (MiB)", "memory reserved (MiB)"),
        tuple(rows),
        (
            f"per replica; every cpus limit is at most the host's {cpus:g} (largest: {sizing['largest_cpus_limit']:g}), "
            f"every memory limit at most what the system and docker-proxy leave",
            f"memory needed: reservations {sizing['memory_reservations_mib']} + docker-proxy {sizing['docker_proxy_mib']:g} "
            f"+ system {sizing['system_mib']} = {sizing['memory_needed_mib']} MiB of {memory} "
            f"({'fits' if sizing['memory_needed_mib'] <= memory else 'does not fit'}); CPUs reserved {sizing['cpus_reservations']:g} of {cpus:g}",
            "limits may add up to more than the host (not every service peaks at once); reservations may not",
        ),
    )


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def explain_tables(data: dict[str, Any]) -> tuple[Table, ...]:
    """The same data as titled tables, in the order a reader needs it."""
    if "placement" in data:
        return _cluster_tables(data)
    host, network, capacity = data["host"], data["network"], data["capacity"]
    lan = network["lan"]
    mode = network["mode"] + (f" ({lan['address']} on {lan['parent']}, {lan['subnet']})" if lan else "")
    summary = Table(
        f"omnigen explain: {data['project']}",
        ("", ""),
        (
            ("host", f"{host['kind']}: {host['label']}"),
            ("userland-proxy (daemon.json)", "on" if host["userland_proxy"] else "off"),
            ("network mode", mode),
            ("advertised in SIP/SDP", network["advertised_ip"]),
            (
                "calls",
                f"{capacity['concurrent_calls']} concurrent, {capacity['supervised_percent']}% supervised, "
                f"video {_yes(capacity['video'])}, {capacity['headroom_percent']}% headroom",
            ),
        ),
    )
    media = Table(
        "Calls -> media ports per component",
        ("component", "channels", "ports needed", "+ headroom", "range", "per call", "published"),
        tuple(
            (
                row["label"],
                str(row["channels"]),
                str(row["ports_needed"]),
                str(row["ports"]),
                f"{row['start']}-{row['end']}",
                f"{row['ports_per_call']:g}",
                _yes(row["published"]),
            )
            for row in data["media"]
        ),
        tuple(row["arithmetic"] for row in data["media"]),
    )
    published = Table(
        f"Published ports ({data['published_total']} host ports)",
        ("host address", "host port(s)", "container", "protocol", "service", "purpose"),
        tuple(
            (row["host_ip"], row["host_ports"], row["container_ports"], row["protocol"], row["service"], row["purpose"])
            for row in data["published"]
        ),
    )
    cost = data["publishing_cost"]
    limits = cost["limits"]
    publishing = Table(
        f"Estimated publishing cost on {cost['host_kind']} (budget: {limits['docker_proxy_memory_mib']:g} MiB of docker-proxy, "
        f"{limits['start_seconds']:g} s to start)",
        ("userland-proxy", "docker-proxy processes", "memory (MiB PSS)", "start (s)", "budget (ports)", "fits", "profile"),
        tuple(
            (
                "on" if row["userland_proxy"] else "off",
                str(row["docker_proxy_processes"]),
                f"{row['memory_mib']:g}",
                f"{row['start_seconds']:g}",
                str(row["budget_ports"]),
                _yes(row["within_budget"]) if row["possible"] else "impossible",
                "declared" if row["declared"] else "",
            )
            for row in cost["settings"]
        ),
        (
            cost["note"],
            f"about {cost['mib_per_docker_proxy']:g} MiB PSS per docker-proxy; {limits['reason']}",
            *(row["note"] for row in cost["settings"] if row["note"]),
        ),
    )
    bandwidth_data = data["bandwidth"]
    bandwidth = Table(
        f"Media bandwidth ({bandwidth_data['legs']} call legs, {bandwidth_data['legs_with_supervisors']} with supervisors)",
        ("codec", "payload kbit/s", "per stream kbit/s", "calls Mbit/s", "with supervisors Mbit/s"),
        tuple(
            (row["codec"], f"{row['payload_kbps']:g}", f"{row['stream_kbps']:g}", f"{row['calls_mbps']:g}", f"{row['with_supervisors_mbps']:g}")
            for row in bandwidth_data["codecs"]
        ),
        (bandwidth_data["note"],),
    )
    warnings = Table(
        f"Warnings ({len(data['warnings'])})",
        ("key", "warning"),
        tuple((row["key"], row["message"]) for row in data["warnings"]) or (("", "none"),),
    )
    firewall = _firewall_tables(data["firewall"]) if data["firewall"] else ()
    return (summary, media, published, *firewall, publishing, bandwidth, _sizing_table(data["sizing"]), warnings, *_application_tables(data))


def _host_cost(kind: str, proxy: bool, layout: PortPlan) -> dict[str, Any]:
    cost = layout.cost(proxy)
    return {
        "published": layout.published,
        "docker_proxy_processes": cost.proxies,
        "memory_mib": _round(cost.memory_mib),
        "start_seconds": _round(cost.start_seconds),
        "summary": describe_cost(cost),
        "within_budget": hostkinds.within(kind, cost),
    }


def _published_rows(layout: PortPlan) -> list[dict[str, Any]]:
    from omnigen.plan.plan import container_port

    rows = []
    for use in layout.uses:
        container = container_port(use)
        rows.append(
            {
                "service": use.service,
                "purpose": use.purpose,
                "host_ip": use.host_ip,
                "host_ports": _span(use.start, use.end),
                "container_ports": _span(container, container + use.count - 1),
                "protocol": use.protocol,
                "count": use.count,
            }
        )
    return rows


def _cluster_data(profile: Profile, plan: Plan, opus_kbps: float) -> dict[str, Any]:
    """explain for a multi-host profile: where everything runs, and each host's ports and cost."""
    cluster = plan.cluster
    assert cluster is not None
    placement: list[dict[str, Any]] = []
    media: list[dict[str, Any]] = []
    bandwidth: list[dict[str, Any]] = []
    for host in cluster.hosts:
        budget = hostkinds.port_budget(host.kind, host.userland_proxy)
        bundle = _host_cost(host.kind, host.userland_proxy, host.ports.bundle)
        stack = _host_cost(host.kind, host.userland_proxy, host.ports.stack)
        placement.append(
            {
                "host": host.name,
                "address": host.address,
                "public_ip": host.public_ip,
                "advertised_ip": host.advertised_ip,
                "roles": list(host.roles),
                "services": list(host.services),
                "swarm_labels": list(host.labels),
                "calls": host.calls,
                "kind": host.kind,
                "userland_proxy": host.userland_proxy,
                "published_for_peers": list(host.peers),
                "published": _published_rows(host.ports.bundle),
                "cost": {
                    "bundle": bundle,
                    "stack": stack,
                    "budget_ports": budget.ports,
                    "within_budget": bundle["within_budget"] and stack["within_budget"],
                },
            }
        )
        for row in _media(host.ports.bundle):
            media.append({"host": host.name, **row})
        if host.ports.bundle.needs:
            bandwidth.append({"host": host.name, **_bandwidth(host.ports.bundle, opus_kbps)})
    return {
        "project": plan.project,
        "host": {
            "kind": profile.host.kind,
            "label": hostkinds.facts(profile.host.kind).label,
            "userland_proxy": profile.host.userland_proxy,
        },
        "network": {"mode": "bridge", "subnet": cluster.subnet, "overlay": cluster.overlay_name},
        "capacity": {
            "concurrent_calls": profile.capacity.concurrent_calls,
            "headroom_percent": profile.capacity.headroom_percent,
            "supervised_percent": profile.capacity.supervised_percent,
            "video": profile.capacity.video,
        },
        "placement": placement,
        "media": media,
        "published_total": sum(host.ports.bundle.published for host in cluster.hosts),
        "bandwidth": bandwidth,
        "note": (
            "per host: its bundle (hosts/NAME/) names an address on every port; stack.yml's host-mode ports cannot, "
            "so docker-proxy runs for IPv4 and IPv6 there; the budget must hold both"
        ),
        "warnings": [{"key": warning.key, "message": warning.message} for warning in plan.warnings],
        # Bundles build from the checkout (two folders deeper); stack.yml, like every Swarm stack, pulls images.*.
        "images": _images(cluster.hosts[0].plan),
        "application": _application(plan),
    }


def _cluster_tables(data: dict[str, Any]) -> tuple[Table, ...]:
    capacity = data["capacity"]
    summary = Table(
        f"omnigen explain: {data['project']} ({len(data['placement'])} hosts)",
        ("", ""),
        (
            ("outputs", "stack.yml (Docker Swarm), label-nodes.sh, deploy-stack.sh; hosts/NAME/ per host (plain compose)"),
            ("networks", f"overlay {data['network']['overlay']} {data['network']['subnet']} (Swarm); the same subnet on each host's bridge"),
            (
                "calls",
                f"{capacity['concurrent_calls']} concurrent, {capacity['supervised_percent']}% supervised, "
                f"video {_yes(capacity['video'])}, {capacity['headroom_percent']}% headroom",
            ),
        ),
    )
    placement = Table(
        "Placement",
        ("host", "address", "advertised", "roles", "calls", "services", "Swarm labels"),
        tuple(
            (
                row["host"],
                row["address"],
                row["advertised_ip"],
                ", ".join(row["roles"]),
                str(row["calls"] or ""),
                ", ".join(row["services"]),
                ", ".join(row["swarm_labels"]),
            )
            for row in data["placement"]
        ),
    )
    media = Table(
        "Calls -> media ports per voice host",
        ("host", "calls", "channels", "ports needed", "+ headroom", "range", "per call"),
        tuple(
            (row["host"], str(row["calls"]), str(row["channels"]), str(row["ports_needed"]), str(row["ports"]), f"{row['start']}-{row['end']}", f"{row['ports_per_call']:g}")
            for row in data["media"]
        ),
        tuple(f"{row['host']}: {row['arithmetic']}" for row in data["media"]),
    )
    published = Table(
        f"Published ports per host ({data['published_total']} host ports in the bundles)",
        ("host", "host address", "host port(s)", "container", "protocol", "service", "purpose"),
        tuple(
            (host["host"], row["host_ip"], row["host_ports"], row["container_ports"], row["protocol"], row["service"], row["purpose"])
            for host in data["placement"]
            for row in host["published"]
        ),
    )
    cost = Table(
        "Estimated publishing cost per host (bundle / stack.yml)",
        ("host", "kind", "userland-proxy", "ports", "docker-proxy", "memory (MiB PSS)", "start (s)", "budget (ports)", "fits"),
        tuple(
            (
                row["host"],
                row["kind"],
                "on" if row["userland_proxy"] else "off",
                f"{row['cost']['bundle']['published']} / {row['cost']['stack']['published']}",
                f"{row['cost']['bundle']['docker_proxy_processes']} / {row['cost']['stack']['docker_proxy_processes']}",
                f"{row['cost']['bundle']['memory_mib']:g} / {row['cost']['stack']['memory_mib']:g}",
                f"{row['cost']['bundle']['start_seconds']:g} / {row['cost']['stack']['start_seconds']:g}",
                str(row["cost"]["budget_ports"]),
                _yes(row["cost"]["within_budget"]),
            )
            for row in data["placement"]
        ),
        (data["note"],),
    )
    bandwidth = Table(
        "Media bandwidth per voice host (Mbit/s each direction)",
        ("host", "codec", "per stream kbit/s", "calls Mbit/s", "with supervisors Mbit/s"),
        tuple(
            (host["host"], row["codec"], f"{row['stream_kbps']:g}", f"{row['calls_mbps']:g}", f"{row['with_supervisors_mbps']:g}")
            for host in data["bandwidth"]
            for row in host["codecs"]
        ),
        tuple(dict.fromkeys(host["note"] for host in data["bandwidth"])),
    )
    warnings = Table(
        f"Warnings ({len(data['warnings'])})",
        ("key", "warning"),
        tuple((row["key"], row["message"]) for row in data["warnings"]) or (("", "none"),),
    )
    return (summary, placement, media, published, cost, bandwidth, warnings, *_application_tables(data))


PLAIN_WIDTH = 100


# "1010 / 1010" (bundle / stack) is one value: its spaces never break (textwrap breaks on ASCII whitespace only).
_GLUED = "\N{NO-BREAK SPACE}/\N{NO-BREAK SPACE}"


def _wrap(text: str, room: int) -> list[str]:
    import textwrap

    lines = textwrap.wrap(text.replace(" / ", _GLUED), room, break_long_words=False, break_on_hyphens=False)
    return [line.replace(_GLUED, " / ") for line in lines] or [""]


def _column_widths(columns: list[tuple[str, ...]], width: int) -> list[int]:
    """Each column as wide as its longest cell, then the widest text columns narrowed, one
    character at a time, until the line fits or every column is down to its longest word."""
    widths = [max(len(cell) for cell in column) for column in columns]
    floors = [max(len(word) for cell in column for word in cell.replace(" / ", _GLUED).split(" ")) for column in columns]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        slack = [(current - floor, index) for index, (current, floor) in enumerate(zip(widths, floors, strict=True)) if current > floor]
        if not slack:
            break
        widths[max(slack)[1]] -= 1
    return widths


def _row_lines(row: tuple[str, ...], widths: list[int]) -> list[str]:
    cells = [_wrap(cell, room) for cell, room in zip(row, widths, strict=True)]
    return [
        "  ".join((cell[depth] if depth < len(cell) else "").ljust(room) for cell, room in zip(cells, widths, strict=True)).rstrip()
        for depth in range(max(len(cell) for cell in cells))
    ]


def render_plain(tables: tuple[Table, ...], width: int = PLAIN_WIDTH) -> str:
    """Aligned columns without colour or box drawing: for pipes, logs and diffs.

    Lines stay within `width` where words allow: titles, headers and the widest text columns
    (purposes, service lists, warnings) wrap at spaces, continuation lines under their column,
    and the notes wrap too; a number, address or name is never broken.
    """
    blocks = []
    for table in tables:
        widths = _column_widths(list(zip(table.columns, *table.rows, strict=True)), width)
        lines = _wrap(table.title, width)
        lines.append("=" * max(len(line) for line in lines))
        if any(table.columns):
            lines += _row_lines(table.columns, widths)
            lines.append("  ".join("-" * room for room in widths))
        for row in table.rows:
            lines += _row_lines(row, widths)
        for note in table.notes:
            lines += [("  * " if index == 0 else "    ") + line for index, line in enumerate(_wrap(note, max(width, 40) - 4))]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# Cells a terminal colours: verdicts in the cost table, and every warning.
VERDICT_STYLES = {"yes": "green", "no": "red", "impossible": "red"}


def print_rich(tables: tuple[Table, ...], console: Console) -> None:
    """The tables for a terminal (rich); colour follows the console (NO_COLOR turns it off)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    for table in tables:
        shown = RichTable(title=table.title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_header=any(table.columns))
        for index, column in enumerate(table.columns):
            # Numbers and addresses never wrap; the last column (purpose, warning text) takes the rest.
            last = index == len(table.columns) - 1
            shown.add_column(column, overflow="fold", no_wrap=not last)
        warnings = table.columns == ("key", "warning")
        for row in table.rows:
            # Text, not markup: cells hold "[...]" that rich would read as style tags.
            shown.add_row(*(Text(cell, style="yellow" if warnings and cell != "none" else VERDICT_STYLES.get(cell, "")) for cell in row))
        console.print(shown)
        for note in table.notes:
            console.print(Text(f"  * {note}", style="dim"))
        console.print()
