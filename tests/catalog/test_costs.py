"""costs.py: the estimates agree with the measurements they come from."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from omnigen.catalog import costs, hostkinds
from omnigen.catalog.costs import MEASUREMENTS, mib_per_proxy, proxies_per_port, publishing_cost, start_seconds
from tests.conftest import ROOT


@pytest.mark.parametrize("row", MEASUREMENTS, ids=lambda row: f"{row.ports}p-proxy{row.userland_proxy}-ipt{row.iptables}-explicit{row.host_ip_explicit}")
def test_proxies_per_port_reproduces_every_measured_process_count(row: costs.Measurement) -> None:
    assert row.ports * proxies_per_port(row.userland_proxy, row.host_ip_explicit) == row.proxies


@pytest.mark.parametrize(
    "row", [row for row in MEASUREMENTS if row.pss_mib and row.proxies and row.setup == costs.PLANNING_SETUP], ids=lambda row: f"{row.ports}p-{row.proxies}proxies"
)
def test_memory_per_proxy_is_within_10_percent_of_every_planning_row(row: costs.Measurement) -> None:
    assert row.pss_mib is not None
    assert abs(row.proxies * mib_per_proxy() - row.pss_mib) <= 0.10 * row.pss_mib


def test_memory_per_proxy_is_about_three_quarters_of_a_mib() -> None:
    assert 0.70 <= mib_per_proxy() <= 0.80


@pytest.mark.parametrize(
    "row",
    [row for row in MEASUREMENTS if row.iptables and row.setup == costs.PLANNING_SETUP],
    ids=lambda row: f"{row.ports}p-proxy{row.userland_proxy}-explicit{row.host_ip_explicit}",
)
def test_start_estimate_passes_through_every_measured_point(row: costs.Measurement) -> None:
    assert start_seconds(row.ports, row.userland_proxy, row.host_ip_explicit) == pytest.approx(row.start_seconds, rel=1e-9)


@pytest.mark.parametrize(("proxy", "explicit"), [(True, True), (True, False), (False, True), (False, False)])
def test_start_estimate_is_zero_at_zero_ports_and_strictly_increasing(proxy: bool, explicit: bool) -> None:
    assert start_seconds(0, proxy, explicit) == 0
    sizes = [1, 2, 50, 100, 101, 499, 500, 501, 1999, 2000, 2001, 5000, 20000, 65535]
    estimates = [start_seconds(size, proxy, explicit) for size in sizes]
    assert all(later > earlier for earlier, later in itertools.pairwise(estimates))


def test_start_grows_faster_than_the_ports_past_the_largest_measurement() -> None:
    """Firewall rule insertion is superlinear (500 -> 2000 ports: 9.3 -> 84 s); extrapolation keeps that."""
    at_2000 = start_seconds(2000, False, True)
    at_4000 = start_seconds(4000, False, True)
    assert at_4000 > 2 * at_2000


def test_proxy_off_is_never_slower_than_proxy_on() -> None:
    for ports in (10, 100, 500, 1000, 2000, 3000):
        assert start_seconds(ports, False, True) <= min(start_seconds(ports, True, True), start_seconds(ports, True, False))


def test_the_host_address_changes_processes_not_start_time() -> None:
    """Measured: naming the host address halves the proxies, but both layouts start within noise of each other."""
    for ports in (10, 100, 500, 1000, 2000, 3000):
        assert start_seconds(ports, True, False) == pytest.approx(start_seconds(ports, True, True), rel=0.15)


def test_publishing_cost_adds_up_explicit_and_implicit_ports() -> None:
    cost = publishing_cost(explicit_ports=300, implicit_ports=100, userland_proxy=True)
    assert cost.ports == 400
    assert cost.proxies == 300 * 1 + 100 * 2
    assert cost.memory_mib == pytest.approx(500 * mib_per_proxy())
    assert start_seconds(400, True, True) <= cost.start_seconds <= start_seconds(400, True, False)


def test_publishing_without_the_proxy_costs_no_process_and_no_memory() -> None:
    largest = max((row for row in MEASUREMENTS if row.setup == costs.PLANNING_SETUP and row.iptables and not row.userland_proxy), key=lambda row: row.ports)
    cost = publishing_cost(largest.ports, 0, userland_proxy=False)
    assert (cost.proxies, cost.memory_mib) == (0, 0)
    # Both layouts were measured near this size with the proxy off; their mean is the estimate.
    assert cost.start_seconds == pytest.approx(largest.start_seconds, rel=0.05)


def test_every_measurement_is_dated_and_sourced() -> None:
    for row in MEASUREMENTS:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row.measured)
        assert row.source and row.setup


def _bench_script(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("bench_deploy", ROOT / "scripts" / "bench_deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_deploy", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_rows_written_by_make_bench_deploy_join_the_measurements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract with scripts/bench_deploy.py: the module it generates is read here and can drive the planner."""
    bench = _bench_script(monkeypatch)
    rows = []
    for proxy, explicit, ports, seconds, proxies in [
        (True, True, 250, 4.0, 250),
        (True, True, 1000, 20.0, 1000),
        (True, False, 260, 5.0, 520),
        (False, True, 250, 3.0, 0),
        (False, True, 1000, 15.0, 0),
    ]:
        row = {"iptables": True, "userland_proxy": proxy, "host_ip_explicit": explicit, "ports": ports, "start_seconds": seconds}
        row |= {"proxies": proxies, "pss_mib": proxies * 0.8, "firewall_rules": 4 * ports}
        rows.append(f"    Row({', '.join(f'{key}={value!r}' for key, value in row.items())}),")
    source = bench.MODULE_TEMPLATE.format(measured="2026-12-01", setup="docker 28 (test)", rows="\n".join(rows), figures="")
    path = tmp_path / "measured_costs.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("omnigen.catalog.measured_costs", path)
    assert spec is not None and spec.loader is not None
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    monkeypatch.setitem(sys.modules, "omnigen.catalog.measured_costs", generated)

    found = costs._bench_measurements()
    assert [(row.ports, row.proxies, row.setup, row.measured) for row in found][:2] == [
        (250, 250, "docker 28 (test)", "2026-12-01"),
        (1000, 1000, "docker 28 (test)", "2026-12-01"),
    ]
    assert costs._plannable(found)
    assert not costs._plannable(found[:2]), "one setting alone cannot drive every estimate"
    assert all(row.ports * proxies_per_port(row.userland_proxy, row.host_ip_explicit) == row.proxies for row in found)


def _clear_caches() -> None:
    for cached in (costs._curve, costs._reference, costs.mib_per_proxy, hostkinds.port_budget):
        cached.cache_clear()


def test_bench_rows_can_drive_every_estimate_once_they_cover_every_setting() -> None:
    setup = "docker 28 (test)"

    def row(proxy: bool, explicit: bool, ports: int, seconds: float) -> costs.Measurement:
        proxies = ports * proxies_per_port(proxy, explicit)
        return costs.Measurement("2026-12-01", "test", setup, True, proxy, explicit, ports, seconds, proxies, 0.8 * proxies)

    bench = (
        row(True, True, 250, 4.0),
        row(True, True, 1000, 20.0),
        row(True, False, 260, 5.0),
        row(True, False, 1010, 26.0),
        row(False, True, 250, 3.0),
        row(False, True, 1000, 15.0),
        row(False, False, 250, 3.4),  # same size as an explicit row: the estimate takes their mean
        row(False, False, 1010, 16.0),
    )
    saved = (costs.MEASUREMENTS, costs.PLANNING_SETUP)
    try:
        costs.MEASUREMENTS, costs.PLANNING_SETUP = costs.DOMAIN_MEASUREMENTS + bench, setup
        _clear_caches()
        assert mib_per_proxy() == pytest.approx(0.8)
        assert start_seconds(1000, True, True) == pytest.approx(20.0)
        assert start_seconds(250, False, True) == pytest.approx(3.2)
        assert start_seconds(4000, False, True) > 4 * start_seconds(1000, False, True) * 0.99
        assert 0 < hostkinds.port_budget("vps", True).ports < hostkinds.port_budget("vps", False).ports
    finally:
        costs.MEASUREMENTS, costs.PLANNING_SETUP = saved
        _clear_caches()
