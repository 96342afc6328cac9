"""What publishing host ports costs on a Docker daemon: measured figures and the estimates drawn from them.

Every number the planner, `omnigen explain` and the port budgets use comes from
`MEASUREMENTS` below, rows taken on a real daemon as their `setup` and
`source` describe. Nothing here is a guess typed in by hand: constants such as
MiB per docker-proxy are derived from the rows, so adding a better measurement
(issue 7: real docker-proxy costs on current Docker) changes every estimate at
once. `make bench-deploy` (issue 7, scripts/bench_deploy.py) writes its rows to
omnigen/catalog/measured_costs.py; they are added here and, once they cover every daemon
setting, become the planning figures (`PLANNING_SETUP`). To add other rows,
append a `Measurement` with its date and source.

The mechanism behind the figures (DOMAIN.md section 4):
- userland-proxy on: one docker-proxy process per published port and address
  family, so two (IPv4 + IPv6) unless the port names an IPv4 host address,
  about 0.75 MiB PSS each;
- userland-proxy off: no processes, but the firewall rules still have to be
  inserted, and that grows superlinearly with the number of ports.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import math
from dataclasses import dataclass

# The daemon the rows of DOMAIN.md section 4 were taken on.
DOMAIN_SETUP = "Debian docker.io 20.10, vfs storage, one container, docker run -p RANGE:RANGE/udp"
DOMAIN_SOURCE = "DOMAIN.md section 4, measured on a machine like the build machine"
DOMAIN_DATE = "2026-11-28"  # the date DOMAIN.md's measurements were recorded


@dataclass(frozen=True)
class Measurement:
    """One timed `docker run -p` of a port range on a real daemon."""

    measured: str  # ISO date the figures were taken
    source: str  # where the figures are written down
    setup: str  # daemon, storage driver, workload
    iptables: bool  # daemon.json "iptables"
    userland_proxy: bool  # daemon.json "userland-proxy"
    host_ip_explicit: bool  # ports published as "0.0.0.0:A-B:A-B" rather than "A-B:A-B"
    ports: int
    start_seconds: float  # until the container is running
    proxies: int  # docker-proxy processes
    pss_mib: float | None  # their total PSS; None when not taken


def _domain(iptables: bool, proxy: bool, explicit: bool, ports: int, seconds: float, proxies: int, pss: float | None) -> Measurement:
    return Measurement(DOMAIN_DATE, DOMAIN_SOURCE, DOMAIN_SETUP, iptables, proxy, explicit, ports, seconds, proxies, pss)


DOMAIN_MEASUREMENTS: tuple[Measurement, ...] = (
    _domain(iptables=False, proxy=True, explicit=False, ports=100, seconds=1.1, proxies=200, pss=152.0),
    _domain(iptables=False, proxy=True, explicit=False, ports=500, seconds=3.8, proxies=1000, pss=750.0),
    _domain(iptables=True, proxy=True, explicit=False, ports=500, seconds=11.9, proxies=1000, pss=753.0),
    _domain(iptables=True, proxy=True, explicit=True, ports=500, seconds=11.0, proxies=500, pss=378.0),
    _domain(iptables=True, proxy=False, explicit=False, ports=100, seconds=1.8, proxies=0, pss=0.0),
    _domain(iptables=True, proxy=False, explicit=False, ports=500, seconds=9.3, proxies=0, pss=0.0),
    _domain(iptables=True, proxy=False, explicit=False, ports=2000, seconds=84.0, proxies=0, pss=0.0),
)


def _bench_measurements() -> tuple[Measurement, ...]:
    """Rows `make bench-deploy` (scripts/bench_deploy.py) writes to omnigen/catalog/measured_costs.py, if it has run."""
    if importlib.util.find_spec("omnigen.catalog.measured_costs") is None:
        return ()
    bench = importlib.import_module("omnigen.catalog.measured_costs")
    return tuple(
        Measurement(
            measured=str(bench.MEASURED_ON),
            source=str(bench.SOURCE),
            setup=str(bench.SETUP),
            iptables=bool(row["iptables"]),
            userland_proxy=bool(row["userland_proxy"]),
            host_ip_explicit=bool(row["host_ip_explicit"]),
            ports=int(row["ports"]),
            start_seconds=float(row["start_seconds"]),
            proxies=int(row["proxies"]),
            pss_mib=float(row["pss_mib"]),
        )
        for row in bench.ROWS
    )


def _plannable(rows: tuple[Measurement, ...]) -> bool:
    """Rows can drive the planner when every daemon setting has a start time and one has two sizes."""
    timed = [row for row in rows if row.iptables]
    settings = {(row.userland_proxy, row.host_ip_explicit or not row.userland_proxy) for row in timed}
    sizes: dict[tuple[bool, bool], set[int]] = {}
    for row in timed:
        sizes.setdefault((row.userland_proxy, row.host_ip_explicit), set()).add(row.ports)
    return {(True, True), (True, False), (False, True)} <= settings and max((len(found) for found in sizes.values()), default=0) >= 2


BENCH_MEASUREMENTS = _bench_measurements()
MEASUREMENTS: tuple[Measurement, ...] = DOMAIN_MEASUREMENTS + BENCH_MEASUREMENTS
# The benchmark measures the generated Asterisk service itself on a current engine: once it has
# run and covers every setting, its rows decide the estimates and budgets; until then DOMAIN.md's.
PLANNING_SETUP = BENCH_MEASUREMENTS[0].setup if BENCH_MEASUREMENTS and _plannable(BENCH_MEASUREMENTS) else DOMAIN_SETUP


def proxies_per_port(userland_proxy: bool, host_ip_explicit: bool) -> int:
    """docker-proxy processes per published port: one per address family it listens on."""
    if not userland_proxy:
        return 0
    return 1 if host_ip_explicit else 2


@functools.cache
def mib_per_proxy() -> float:
    """Average PSS of one docker-proxy, over the planning rows that counted both processes and memory."""
    rows = [row for row in MEASUREMENTS if row.proxies and row.pss_mib is not None and row.setup == PLANNING_SETUP]
    return sum(row.pss_mib or 0.0 for row in rows) / sum(row.proxies for row in rows)


Point = tuple[int, float]


def _planning_rows() -> list[Measurement]:
    # iptables on is Docker's default and the only setting published ports
    # should run with in production; the iptables-off rows stay as a record and
    # feed mib_per_proxy().
    return [row for row in MEASUREMENTS if row.setup == PLANNING_SETUP and row.iptables]


@functools.cache
def _curve(userland_proxy: bool, host_ip_explicit: bool) -> tuple[Point, ...]:
    # With the proxy off the host address makes no difference (no process listens).
    explicit_matters = userland_proxy
    times: dict[int, list[float]] = {}
    for row in _planning_rows():
        if row.userland_proxy == userland_proxy and (not explicit_matters or row.host_ip_explicit == host_ip_explicit):
            times.setdefault(row.ports, []).append(row.start_seconds)
    # Several runs at one size (or both layouts with the proxy off) count as their mean.
    return tuple((ports, sum(seconds) / len(seconds)) for ports, seconds in sorted(times.items()) if ports > 0)


@functools.cache
def _reference() -> tuple[Point, ...]:
    """The setting measured at the most sizes: its shape is used for the others."""
    candidates = [_curve(proxy, explicit) for proxy in (False, True) for explicit in (False, True)]
    best = max(candidates, key=len)
    if len(best) < 2:
        raise ValueError(f"costs: no start-time curve with two sizes for {PLANNING_SETUP!r}; add measurements")
    return best


def _along(points: tuple[Point, ...], ports: int) -> float:
    """Piecewise linear through (0, 0) and the points; past the last one, the last segment's power law.

    Past the largest measurement the growth exponent of the last segment is
    kept (never below linear), because firewall rule insertion is superlinear:
    the measured 500 -> 2000 ports took 9.3 -> 84 s, 9x the time for 4x the ports.
    """
    if ports <= 0:
        return 0.0
    previous: Point = (0, 0.0)
    for size, seconds in points:
        if ports <= size:
            low_size, low_seconds = previous
            return low_seconds + (seconds - low_seconds) * (ports - low_size) / (size - low_size)
        previous = (size, seconds)
    n2, t2 = points[-1]
    # The growth exponent over at least a doubling of the ports: two rows a few ports
    # apart (bench-deploy measures both layouts at nearly the same size) would turn
    # timing noise into an absurd exponent.
    n1, t1 = next((point for point in reversed(points[:-1]) if point[0] * 2 <= n2), points[-2])
    exponent = max(1.0, math.log(t2 / t1) / math.log(n2 / n1))
    growth: float = (ports / n2) ** exponent
    return t2 * growth


def start_seconds(ports: int, userland_proxy: bool, host_ip_explicit: bool) -> float:
    """Estimated seconds for the daemon to publish `ports` ports when the container starts.

    The setting's own measurements anchor the estimate; between and beyond them
    it follows the shape of the setting measured at the most sizes, scaled to
    pass through this setting's points.
    """
    if ports <= 0:
        return 0.0
    own = _curve(userland_proxy, host_ip_explicit)
    reference = _reference()
    if not own:
        raise ValueError(f"costs: no start-time measurement for userland-proxy={userland_proxy} in {PLANNING_SETUP!r}")
    if own == reference:
        return _along(reference, ports)
    ratios = tuple((size, seconds / _along(reference, size)) for size, seconds in own)
    if ports <= ratios[0][0]:
        scale = ratios[0][1]
    elif ports >= ratios[-1][0]:
        scale = ratios[-1][1]
    else:
        scale = _along_ratio(ratios, ports)
    return _along(reference, ports) * scale


def _along_ratio(ratios: tuple[tuple[int, float], ...], ports: int) -> float:
    for (n1, r1), (n2, r2) in itertools.pairwise(ratios):
        if n1 <= ports <= n2:
            return r1 + (r2 - r1) * (ports - n1) / (n2 - n1)
    return ratios[-1][1]


@dataclass(frozen=True)
class PublishingCost:
    """Estimated cost of publishing a set of host ports with one daemon setting."""

    ports: int
    userland_proxy: bool
    proxies: int
    memory_mib: float
    start_seconds: float


def publishing_cost(explicit_ports: int, implicit_ports: int, userland_proxy: bool) -> PublishingCost:
    """Cost of `explicit_ports` published on a named IPv4 address and `implicit_ports` without one."""
    ports = explicit_ports + implicit_ports
    proxies = explicit_ports * proxies_per_port(userland_proxy, True) + implicit_ports * proxies_per_port(userland_proxy, False)
    # The start time is dominated by the daemon's per-port work; ports without a
    # host address cost as the implicit row measured, the others as explicit.
    explicit_share = explicit_ports / ports if ports else 1.0
    seconds = explicit_share * start_seconds(ports, userland_proxy, True) + (1 - explicit_share) * start_seconds(ports, userland_proxy, False)
    return PublishingCost(ports, userland_proxy, proxies, proxies * mib_per_proxy(), seconds)
