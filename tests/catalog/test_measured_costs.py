"""measured_costs.py (written by `make bench-deploy`): complete, self-consistent, and used by costs.py."""

from __future__ import annotations

import re

import pytest

from omnigen.catalog import costs, measured_costs
from omnigen.catalog.measured_costs import PER_PORT, ROWS, Row

SERIES = [(explicit, proxy) for explicit in (True, False) for proxy in (True, False)]


def series(explicit: bool, proxy: bool) -> list[Row]:
    return [row for row in ROWS if row["host_ip_explicit"] == explicit and row["userland_proxy"] == proxy]


@pytest.mark.parametrize(("explicit", "proxy"), SERIES)
def test_every_layout_and_setting_was_measured_at_several_sizes(explicit: bool, proxy: bool) -> None:
    sizes = sorted(row["ports"] for row in series(explicit, proxy))
    assert len(sizes) >= 2 and sizes == sorted(set(sizes))


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row['ports']}p-proxy{row['userland_proxy']}-explicit{row['host_ip_explicit']}")
def test_process_counts_follow_the_mechanism_costs_py_assumes(row: Row) -> None:
    """One docker-proxy per port on an IPv4 address, two without one, none with the proxy off."""
    assert row["proxies"] == row["ports"] * costs.proxies_per_port(row["userland_proxy"], row["host_ip_explicit"])
    assert (row["pss_mib"] > 0) == (row["proxies"] > 0)


@pytest.mark.parametrize(("explicit", "proxy"), SERIES)
def test_per_port_figures_are_the_ratios_of_their_rows(explicit: bool, proxy: bool) -> None:
    rows = series(explicit, proxy)
    figures = PER_PORT[(explicit, proxy)]
    ports = sum(row["ports"] for row in rows)
    proxies = sum(row["proxies"] for row in rows)
    assert figures["proxies_per_port"] == pytest.approx(proxies / ports, abs=1e-3)
    assert figures["rules_per_port"] == pytest.approx(sum(row["firewall_rules"] for row in rows) / ports, abs=1e-3)
    expected_mib = sum(row["pss_mib"] for row in rows) / proxies if proxies else 0.0
    assert figures["mib_per_proxy"] == pytest.approx(expected_mib, abs=1e-3)
    assert figures["seconds_per_port"] >= 0


def test_start_time_and_rules_grow_with_the_ports() -> None:
    for explicit, proxy in SERIES:
        rows = sorted(series(explicit, proxy), key=lambda row: row["ports"])
        assert rows[-1]["start_seconds"] > rows[0]["start_seconds"]
        assert [row["firewall_rules"] for row in rows] == sorted(row["firewall_rules"] for row in rows)


def test_costs_py_plans_with_every_measured_row() -> None:
    added = [row for row in costs.MEASUREMENTS if row.setup == measured_costs.SETUP]
    assert len(added) == len(ROWS)
    assert {(row.ports, row.userland_proxy, row.host_ip_explicit, row.proxies) for row in added} == {
        (row["ports"], row["userland_proxy"], row["host_ip_explicit"], row["proxies"]) for row in ROWS
    }


def test_measurement_is_dated_and_names_its_engine() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", measured_costs.MEASURED_ON)
    assert "docker.io" in measured_costs.SETUP and "make bench-deploy" in measured_costs.SOURCE
