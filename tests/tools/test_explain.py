"""omnigen explain: JSON pinned per example, the same numbers as the plan, plain text on pipes, NO_COLOR."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from omnigen.catalog import costs, hostkinds
from omnigen.cli import main
from omnigen.loading import load_profile
from omnigen.plan.capacity import port_plan
from omnigen.tools.explain import explain_tables, print_rich
from tests.conftest import ALL_EXAMPLES, EXAMPLES, ROOT, compile_example, run_cli

COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[0-9;]+)m")


def _explain(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["explain", *args, "--format", "json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda path: path.stem)
def test_explain_json_snapshot(profile: Path, capsys: pytest.CaptureFixture[str], snapshot_as) -> None:  # type: ignore[no-untyped-def]
    data = _explain(capsys, str(profile))
    assert snapshot_as("json") == json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda path: path.stem)
def test_explain_agrees_with_what_build_publishes(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _explain(capsys, str(profile))
    plan = compile_example(profile).plan
    assert [(row["host_ip"], row["host_ports"], row["protocol"]) for row in data["published"]] == [
        (port.host_ip, f"{port.host_start}" if port.host_start == port.host_end else f"{port.host_start}-{port.host_end}", port.protocol)
        for port in plan.all_published
    ]
    assert data["published_total"] == port_plan(load_profile(profile, {})).published
    assert data["warnings"] == [{"key": warning.key, "message": warning.message} for warning in plan.warnings]
    asterisk = next(row for row in data["media"] if row["component"] == "asterisk")
    assert (asterisk["start"], asterisk["end"]) == (plan.rtp.start, plan.rtp.end)
    declared = next(row for row in data["publishing_cost"]["settings"] if row["declared"])
    assert declared["within_budget"], "an example that passed validation must be within its budget"


def test_costs_are_the_measured_estimates_for_both_settings(capsys: pytest.CaptureFixture[str]) -> None:
    data = _explain(capsys, str(ROOT / "profiles" / "vps-nat.toml"))
    total = data["published_total"]
    on, off = data["publishing_cost"]["settings"]
    assert (on["userland_proxy"], off["userland_proxy"]) == (True, False)
    # vps-nat publishes on 0.0.0.0 explicitly: one docker-proxy per port, not two.
    assert on["docker_proxy_processes"] == total
    assert on["memory_mib"] == round(total * costs.mib_per_proxy(), 1)
    assert on["start_seconds"] == round(costs.start_seconds(total, True, True), 1)
    assert (off["docker_proxy_processes"], off["memory_mib"]) == (0, 0)
    assert on["budget_ports"] == hostkinds.port_budget("vps", True).ports
    assert "estimates" in data["publishing_cost"]["note"] and "2026-11-28" in data["publishing_cost"]["note"]


def test_bandwidth_counts_two_legs_per_call_and_the_supervisors(capsys: pytest.CaptureFixture[str]) -> None:
    data = _explain(capsys, str(ROOT / "profiles" / "call-center-500.toml"), "--opus-kbps", "24")
    bandwidth = data["bandwidth"]
    assert (bandwidth["legs"], bandwidth["legs_with_supervisors"]) == (1000, 1050)
    g711 = next(row for row in bandwidth["codecs"] if row["codec"] == "G.711")
    assert (g711["stream_kbps"], g711["calls_mbps"], g711["with_supervisors_mbps"]) == (87.2, 87.2, 91.56)
    opus = next(row for row in bandwidth["codecs"] if row["codec"] == "Opus")
    assert opus["stream_kbps"] == 47.2


def test_lan_mode_says_asterisk_media_is_not_published(capsys: pytest.CaptureFixture[str]) -> None:
    data = _explain(capsys, str(ROOT / "profiles" / "call-center-500.toml"))
    assert data["network"]["lan"] == {"driver": "ipvlan", "parent": "eno1", "subnet": "192.168.10.0/24", "address": "192.168.10.21"}
    assert [row["published"] for row in data["media"]] == [False]
    assert {row["service"] for row in data["published"]} == {"nginx"}


def test_piped_output_is_plain_text_tables() -> None:
    result = run_cli("explain", str(ROOT / "profiles" / "rootless.toml"))
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    for title in ("Calls -> media ports per component", "Published ports (56 host ports)", "Estimated publishing cost on rootless", "Media bandwidth", "Warnings (2)"):
        assert title in result.stdout
    assert "192.168.50.5  16000-16051" in result.stdout
    assert "rootless Docker loses UDP source addresses" in result.stdout


@pytest.mark.parametrize("profile", sorted(ALL_EXAMPLES), ids=lambda p: p.stem)
def test_piped_output_fits_100_columns_and_loses_no_word(profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Logs and pagers: long warnings, purposes and service lists wrap under their column."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["explain", str(profile)]) == 0
    piped = capsys.readouterr().out
    assert max(len(line) for line in piped.splitlines()) <= 100
    assert main(["explain", str(profile), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    warnings = [warning["message"] for warning in data["warnings"]] if data["warnings"] and isinstance(data["warnings"][0], dict) else []
    for message in warnings:  # every word of every warning is still there, in order
        assert " ".join(message.split()) in " ".join(piped.split()), message


def test_columns_sets_the_piped_width(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    assert main(["explain", str(ROOT / "profiles" / "proxmox-lxc.toml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 72 and len(lines) > 40


def _terminal_output(monkeypatch: pytest.MonkeyPatch, no_color: bool) -> str:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["explain", str(ROOT / "profiles" / "rootless.toml")]) == 0
    return screen.getvalue()


def test_terminal_output_is_coloured_rich_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _terminal_output(monkeypatch, no_color=False)
    assert COLOUR.search(shown), "warnings and verdicts are coloured on a terminal"
    assert "─" in shown  # rich's box drawing, not the plain renderer


def test_no_color_removes_every_colour_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _terminal_output(monkeypatch, no_color=True)
    assert "─" in shown
    assert not COLOUR.search(shown)


def test_cells_with_brackets_are_printed_literally() -> None:
    """Warnings can hold "[...]" that rich markup would swallow."""
    data: dict[str, Any] = json.loads(run_cli("explain", str(ROOT / "profiles" / "vps-nat.toml"), "--format", "json").stdout)
    data["warnings"] = [{"key": "network.lan", "message": "add [network.lan] and [bold]this[/bold]"}]
    screen = io.StringIO()
    print_rich(explain_tables(data), Console(file=screen, width=200, force_terminal=False))
    assert "add [network.lan] and [bold]this[/bold]" in screen.getvalue()


def test_over_budget_profile_is_refused_with_the_numbers_and_a_way_out(tmp_path: Path) -> None:
    profile = tmp_path / "big.toml"
    profile.write_text(
        'schema_version = 2\n[project]\nname = "big"\n[host]\nkind = "docker-desktop"\n[network]\nbind_ip = "127.0.0.1"\n'
        "[capacity]\nconcurrent_calls = 100\n"
    )
    result = run_cli("explain", str(profile))
    assert result.returncode == 2
    assert result.stdout == ""
    message = result.stderr
    assert f"{profile}:9: capacity.concurrent_calls: 100 calls publish" in message
    assert "docker-proxy processes" in message and "MiB PSS" in message
    assert f"over the budget of {hostkinds.port_budget('docker-desktop', True).ports} ports" in message
    assert "lower capacity.concurrent_calls to at most" in message
    assert "Traceback" not in message


def test_opus_bitrate_outside_what_opus_encodes_is_a_usage_error() -> None:
    result = run_cli("explain", str(ROOT / "profiles" / "vps-nat.toml"), "--opus-kbps", "900")
    assert result.returncode == 2
    assert "--opus-kbps: Opus encodes 6-510 kbit/s (got 900)" in result.stderr


def test_explain_writes_no_secrets_sidecar(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    result = run_cli("explain", str(profile), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site.toml"]
    assert "explain-prints-no-secrets" not in result.stdout
