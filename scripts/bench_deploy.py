"""Deployment-cost benchmark: what publishing the Asterisk RTP range costs on a real Docker engine.

For each daemon setting (defaults; `userland-proxy: false`), each capacity and
each port layout, the Asterisk service alone is brought up with the real
Compose binary on a private dockerd (tests/e2e/engine.py), and we record:

- start: wall time of `compose up --detach` (ports are bound when it returns)
- stop: wall time of `compose down --volumes`
- docker-proxy processes of that daemon and their memory (PSS, /proc/PID/smaps_rollup)
- firewall rules the deployment added (`iptables-save` + `ip6tables-save`, -A lines)

Layouts, both with the RTP range omnigen computes for the capacity (so both
could carry the calls):
- ours: the generated service, every port on an explicit IPv4 host address
- reference: the v2 hand-written layout (reference/omnivoip-v2/docker-compose.yml),
  the same ports as there (SIP, TLS, HTTP/WS, AMI) without a host address

Writes out/bench/deploy-costs.csv and .png, the table in docs/deploy-costs.md
(between the bench-deploy markers) and the rows with per-port figures in
omnigen/catalog/measured_costs.py, which omnigen/catalog/costs.py (and so `omnigen explain`) reads.

Run as root with `make bench-deploy` (installs Docker via .ci/install-docker.sh).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omnigen.inputs.profile import Secrets  # noqa: E402
from omnigen.loading import load_profile  # noqa: E402
from omnigen.pipeline import compile_profile  # noqa: E402
from omnigen.plan.plan import Plan  # noqa: E402
from tests.e2e.engine import DockerEngine, running_engine  # noqa: E402
from tests.e2e.standins import build_standins  # noqa: E402

CAPACITIES = (10, 50, 100, 250)
BIND_IP = "127.0.0.1"
RTP_START = 20000
SETTINGS = {"default": True, "userland-proxy-false": False}  # name -> userland-proxy
LAYOUTS = ("ours", "reference")
DOC_BEGIN = "<!-- bench-deploy:begin -->"
DOC_END = "<!-- bench-deploy:end -->"
MIB = 1024.0

# The reference v2 Asterisk `ports:` (reference/omnivoip-v2/docker-compose.yml),
# copied here because nothing may read shared/ at run time; RANGE is the RTP range.
REFERENCE_PORTS = (
    "5060:5060/udp",
    "5060:5060/tcp",
    "5061:5061/tcp",
    "RANGE:RANGE/udp",
    "8088:8088/tcp",
    "8089:8089/tcp",
    "5038:5038/tcp",
)

PROFILE = """\
schema_version = 2

[project]
name = "bench"

[host]
kind = "bare-metal"
# Only the port budget reads this: omnigen refuses capacities whose docker-proxy
# cost exceeds the host's budget, and the benchmark must measure past it.
userland_proxy = false

[network]
subnet = "10.231.88.0/24"
bind_ip = "{bind_ip}"

[capacity]
concurrent_calls = {calls}

[rtp]
start = {rtp_start}
"""


@dataclass(frozen=True)
class Measurement:
    settings: str
    layout: str
    calls: int
    rtp_ports: int
    published_ports: int
    host_bindings: int
    start_seconds: float
    stop_seconds: float
    proxies: int
    proxy_pss_mib: float
    firewall_rules: int
    runs: int = 1


def plan_for(calls: int, work: Path) -> tuple[Plan, dict[str, str]]:
    profile = work / f"bench-{calls}.toml"
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(PROFILE.format(bind_ip=BIND_IP, calls=calls, rtp_start=RTP_START))
    compiled = compile_profile(load_profile(profile, {}), Secrets())
    return compiled.plan, compiled.files


def asterisk_only(files: dict[str, str], layout: str, plan: Plan) -> dict[str, Any]:
    """The generated compose file reduced to the Asterisk service, with our or the reference's ports."""
    import yaml

    compose = yaml.safe_load(files["docker-compose.yml"])
    service = compose["services"]["asterisk"]
    service.pop("depends_on", None)
    # Port publishing is what is measured: a listener on AMI keeps the health check green
    # without the stand-in waiting for a database that is not part of this deployment.
    service["command"] = ["portd", "--banner", "bench", f"tcp:{plan.listen['asterisk-ami']}"]
    if layout == "reference":
        span = f"{plan.rtp.start}-{plan.rtp.end}"
        service["ports"] = [entry.replace("RANGE", span) for entry in REFERENCE_PORTS]
        service["networks"] = [plan.network.name]
    compose["services"] = {"asterisk": service}
    compose["volumes"] = {name: {} for name in compose.get("volumes", {}) if name.startswith("asterisk_")}
    compose["name"] = f"bench-{layout}-{plan.rtp.calls}"
    return dict(compose)


def firewall_rules() -> int:
    total = 0
    for command in ("iptables-save", "ip6tables-save"):
        result = subprocess.run([command], capture_output=True, text=True, check=False)
        total += sum(1 for line in result.stdout.splitlines() if line.startswith("-A "))
    return total


def pss_mib(pids: list[int]) -> float:
    kib = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
        kib += int(match.group(1)) if match else 0
    return kib / MIB


def published(engine: DockerEngine, folder: Path) -> tuple[int, int]:
    """(container ports published, host bindings): unaddressed ports may be bound for IPv4 and IPv6."""
    names = engine.compose(folder, "ps", "--quiet").stdout.split()
    ports = bindings = 0
    for container in engine.inspect(*names):
        for bound in (container["NetworkSettings"]["Ports"] or {}).values():
            ports += 1 if bound else 0
            bindings += len(bound or ())
    return ports, bindings


def measure(engine: DockerEngine, settings: str, layout: str, compiled: tuple[Plan, dict[str, str]], work: Path) -> Measurement:
    plan, files = compiled
    calls = plan.rtp.calls
    folder = work / settings / f"{layout}-{calls}"
    (folder / "asterisk").mkdir(parents=True, exist_ok=True)
    for relative in (".env", "asterisk/rtp.conf", "asterisk/pjsip.conf"):
        (folder / relative).write_text(files[relative])
    (folder / "docker-compose.yml").write_text(json.dumps(asterisk_only(files, layout, plan), indent=2))
    rules_before = firewall_rules()
    started = time.monotonic()
    up = engine.compose(folder, "up", "--detach", timeout=1800)
    start_seconds = time.monotonic() - started
    if up.returncode != 0:
        raise RuntimeError(f"compose up failed for {settings}/{layout}/{calls}:\n{up.stderr}\n{engine.log_tail()}")
    proxies = engine.proxy_pids()
    measurement_pss = pss_mib(proxies)
    rules = firewall_rules() - rules_before
    ports, bindings = published(engine, folder)
    stopping = time.monotonic()
    down = engine.compose(folder, "down", "--volumes", "--timeout", "5", timeout=1800)
    stop_seconds = time.monotonic() - stopping
    if down.returncode != 0:
        raise RuntimeError(f"compose down failed for {settings}/{layout}/{calls}:\n{down.stderr}")
    return Measurement(settings, layout, calls, plan.rtp.size, ports, bindings, round(start_seconds, 2), round(stop_seconds, 2),
                       len(proxies), round(measurement_pss, 1), rules)  # fmt: skip


def run_benchmark(capacities: tuple[int, ...], work: Path, repeat: int) -> tuple[list[Measurement], list[Measurement], str]:
    """Every cell `repeat` times; returns (medians per cell, every run, engine version).

    Each repetition starts a fresh engine per setting, so load changes on the
    machine over the run spread over both settings and both layouts alike.
    """
    runs: list[Measurement] = []
    version = ""
    # Compile every capacity first: the engines run only for the measurements.
    compiled = {calls: plan_for(calls, work) for calls in capacities}
    for _ in range(repeat):
        for settings, userland_proxy in SETTINGS.items():
            with running_engine(userland_proxy=userland_proxy) as engine:
                version = engine.docker("info", "--format", "{{.ServerVersion}}, {{.Driver}} storage").stdout.strip()
                build_standins(engine, compiled[capacities[0]][0], keys=("asterisk",))
                for calls in capacities:
                    for layout in LAYOUTS:
                        result = measure(engine, settings, layout, compiled[calls], work)
                        print(json.dumps(asdict(result)), flush=True)
                        runs.append(result)
    return medians(runs), runs, version


def medians(runs: list[Measurement]) -> list[Measurement]:
    """One row per setting, layout and capacity: the median of every figure over its runs."""
    cells: dict[tuple[str, str, int], list[Measurement]] = {}
    for run in runs:
        cells.setdefault((run.settings, run.layout, run.calls), []).append(run)
    combined = []
    for (settings, layout, calls), cell in cells.items():
        figures = {
            name: statistics.median(getattr(run, name) for run in cell)
            for name in ("rtp_ports", "published_ports", "host_bindings", "start_seconds", "stop_seconds", "proxies", "proxy_pss_mib", "firewall_rules")
        }
        combined.append(
            Measurement(
                settings, layout, calls,
                rtp_ports=int(figures["rtp_ports"]),
                published_ports=int(figures["published_ports"]),
                host_bindings=int(figures["host_bindings"]),
                start_seconds=round(float(figures["start_seconds"]), 2),
                stop_seconds=round(float(figures["stop_seconds"]), 2),
                proxies=int(figures["proxies"]),
                proxy_pss_mib=round(float(figures["proxy_pss_mib"]), 1),
                firewall_rules=int(figures["firewall_rules"]),
                runs=len(cell),
            )
        )  # fmt: skip
    return combined


def write_csv(results: list[Measurement], path: Path, measured: str, version: str) -> None:
    """The rows, and beside them (.json) when and on which engine they were measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(results[0])))
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))
    path.with_suffix(".json").write_text(json.dumps({"measured_on": measured, "engine_version": version}, indent=2) + "\n")


def read_csv(path: Path) -> tuple[list[Measurement], str, str]:
    """Rows written by an earlier run, to regenerate the plot, doc and module without measuring again."""
    kinds = Measurement.__annotations__  # type names as strings (postponed annotations)
    converters = {"int": int, "float": float}
    results = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            values = {name: converters.get(kinds[name], str)(value) for name, value in row.items()}
            results.append(Measurement(**values))
    meta = json.loads(path.with_suffix(".json").read_text())
    return results, str(meta["measured_on"]), str(meta["engine_version"])


def write_plot(results: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("start_seconds", "compose up (s)"),
        ("proxies", "docker-proxy processes"),
        ("proxy_pss_mib", "docker-proxy PSS (MiB)"),
        ("firewall_rules", "firewall rules added"),
    )
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    for axis, (metric, title) in zip(axes.flat, panels, strict=True):
        for settings in SETTINGS:
            for layout in LAYOUTS:
                rows = [r for r in results if r.settings == settings and r.layout == layout]
                style = "-" if layout == "ours" else "--"
                marker = "o" if settings == "default" else "s"
                axis.plot([r.calls for r in rows], [getattr(r, metric) for r in rows], style, marker=marker,
                          label=f"{layout}, {settings}")  # fmt: skip
        axis.set_title(title)
        axis.set_xlabel("concurrent calls")
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("Publishing the Asterisk RTP range: ours (explicit IPv4 host address) vs reference v2 (no address)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown_table(results: list[Measurement]) -> str:
    lines = [
        "| daemon settings | layout | calls | RTP ports | ports published | host bindings | start (s) | stop (s) | docker-proxy | their PSS (MiB) | firewall rules |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.settings} | {r.layout} | {r.calls} | {r.rtp_ports} | {r.published_ports} | {r.host_bindings} | {r.start_seconds:.1f} | "
            f"{r.stop_seconds:.1f} | {r.proxies} | {r.proxy_pss_mib:.0f} | {r.firewall_rules} |"
        )
    return "\n".join(lines)


def update_doc(results: list[Measurement], path: Path, measured: str, version: str) -> None:
    block = (
        f"{DOC_BEGIN}\nMeasured {measured} on Docker {version} (Debian docker.io), "
        f"`make bench-deploy`; each row is the median of {min(r.runs for r in results)} runs.\n\n"
        f"{markdown_table(results)}\n{DOC_END}"
    )
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise SystemExit(f"{path}: the {DOC_BEGIN} ... {DOC_END} markers are missing; restore them")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(head + block + tail)


def per_port(results: list[Measurement], settings: str, layout: str) -> dict[str, float]:
    """Per-published-port figures of one setting/layout series: ratios for counts, a least-squares slope for start time."""
    import numpy

    rows = [r for r in results if r.settings == settings and r.layout == layout]
    ports = numpy.array([r.published_ports for r in rows], dtype=float)
    proxies = sum(r.proxies for r in rows)
    slope = float(numpy.polyfit(ports, [r.start_seconds for r in rows], 1)[0]) if len(rows) > 1 else 0.0
    return {
        "proxies_per_port": round(proxies / float(ports.sum()), 3),
        "mib_per_proxy": round(sum(r.proxy_pss_mib for r in rows) / proxies, 3) if proxies else 0.0,
        "seconds_per_port": round(max(slope, 0.0), 5),
        "rules_per_port": round(sum(r.firewall_rules for r in rows) / float(ports.sum()), 3),
    }


def write_costs_module(results: list[Measurement], path: Path, measured: str, version: str) -> None:
    rows = []
    for r in results:
        row = {
            "iptables": True,
            "userland_proxy": SETTINGS[r.settings],
            "host_ip_explicit": r.layout == "ours",
            "ports": r.published_ports,
            "start_seconds": r.start_seconds,
            "proxies": r.proxies,
            "pss_mib": r.proxy_pss_mib,
            "firewall_rules": r.firewall_rules,
        }
        rows.append(f"    Row({', '.join(f'{key}={value!r}' for key, value in row.items())}),")
    figures = []
    for settings, userland_proxy in SETTINGS.items():
        for layout in LAYOUTS:
            arguments = ", ".join(f"{key}={value!r}" for key, value in per_port(results, settings, layout).items())
            figures.append(f"    ({layout == 'ours'!r}, {userland_proxy!r}): PerPort({arguments}),")
    setup = f"Debian docker.io {version}, compose up of the Asterisk service alone (make bench-deploy)"
    path.write_text(
        MODULE_TEMPLATE.format(measured=measured, setup=setup, rows="\n".join(rows), figures="\n".join(figures))
    )


MODULE_TEMPLATE = '''\
"""Port-publishing costs measured on a real Docker engine by `make bench-deploy`.

GENERATED by scripts/bench_deploy.py: rerun the benchmark instead of editing.
omnigen/catalog/costs.py adds these rows to its measurements, so `omnigen explain` and
the port budgets use them. docs/deploy-costs.md has the same table and the method.

A row is one `compose up --detach` of the Asterisk service alone, with the RTP
range omnigen computes for a capacity: `host_ip_explicit` True is omnigen's
layout (every port on one IPv4 host address), False the reference v2 layout
(no host address, so the daemon binds IPv4 and IPv6). `ports` counts published
ports (a range of N ports is N); `firewall_rules` is the number of
iptables/ip6tables rules the deployment added.
"""

from __future__ import annotations

from typing import TypedDict

MEASURED_ON = "{measured}"
SETUP = "{setup}"
SOURCE = "docs/deploy-costs.md (make bench-deploy)"


class Row(TypedDict):
    """One measured `compose up` (daemon.json settings, layout, and what it cost)."""

    iptables: bool
    userland_proxy: bool
    host_ip_explicit: bool
    ports: int
    start_seconds: float
    proxies: int
    pss_mib: float
    firewall_rules: int


class PerPort(TypedDict):
    """Figures per published port, fitted over the rows of one setting and layout."""

    proxies_per_port: float
    mib_per_proxy: float
    seconds_per_port: float
    rules_per_port: float


ROWS: tuple[Row, ...] = (
{rows}
)

# (host_ip_explicit, userland_proxy) -> per-port figures; seconds_per_port is the
# least-squares slope of the start time (rule insertion grows faster than linear).
PER_PORT: dict[tuple[bool, bool], PerPort] = {{
{figures}
}}
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--capacities", default=",".join(map(str, CAPACITIES)), help="comma-separated concurrent calls")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench", help="folder of the CSV, PNG and work files")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "deploy-costs.md", help="doc whose table is replaced")
    parser.add_argument("--costs", type=Path, default=ROOT / "omnigen" / "catalog" / "measured_costs.py", help="generated figures module")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the table holds their medians (start times are noisy)")
    parser.add_argument("--from-csv", action="store_true", help="measure nothing: regenerate outputs from OUT/deploy-costs.csv")
    parser.add_argument("--no-publish", action="store_true", help="write only out/bench, leave the doc and omnigen/catalog/measured_costs.py alone")
    args = parser.parse_args(argv)
    capacities = tuple(int(value) for value in args.capacities.split(","))
    table = args.out / "deploy-costs.csv"
    if args.from_csv:
        results, measured, version = read_csv(table)
    else:
        measured = datetime.date.today().isoformat()
        results, runs, version = run_benchmark(capacities, args.out / "work", args.repeat)
        write_csv(results, table, measured, version)
        write_csv(runs, args.out / "deploy-costs-runs.csv", measured, version)
    write_plot(results, args.out / "deploy-costs.png")
    print(markdown_table(results))
    if not args.no_publish:
        update_doc(results, args.doc, measured, version)
        write_costs_module(results, args.costs, measured, version)
    print(f"wrote {args.out / 'deploy-costs.csv'}, {args.out / 'deploy-costs.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
