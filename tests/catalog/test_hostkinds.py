"""Host-kind rules and port budgets: every rule with its reason, every budget at its edge."""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path
from typing import Any

import pytest

from omnigen.catalog import costs, hostkinds
from omnigen.errors import EXIT_BAD_INPUT, ProfileError
from omnigen.inputs.profile import HostKind, Profile, Secrets
from omnigen.loading import validate_profile
from omnigen.plan.capacity import port_plan
from tests.conftest import compile_example, fake_token

BASE: dict[str, Any] = {
    "schema_version": 2,
    "project": {"name": "acme"},
    "host": {"kind": "vps"},
    "network": {"subnet": "10.22.22.0/24", "bind_ip": "192.168.1.10"},
    "capacity": {"concurrent_calls": 10},
    "rtp": {"start": 10000},
}
LAN = {"parent": "eth0", "subnet": "192.168.1.0/24", "gateway": "192.168.1.1", "address": "192.168.1.50"}
ROOTLESS_PORTS = {"http": 8080, "https": 8443}


def _data(*patches: tuple[str, Any]) -> dict[str, Any]:
    """BASE with dotted keys set: ("host.kind", "rootless")."""
    data = copy.deepcopy(BASE)
    for dotted, value in patches:
        *tables, key = dotted.split(".")
        node = data
        for table in tables:
            node = node.setdefault(table, {})
        node[key] = value
    return data


def _validate(data: dict[str, Any]) -> Profile:
    return validate_profile(data, file="acme.toml", text="", env={})


def _warnings(profile: Profile) -> list[str]:
    from omnigen.pipeline import compile_profile

    return [warning.render() for warning in compile_profile(profile, Secrets(), fake_token).plan.warnings]


def test_every_host_kind_has_facts() -> None:
    assert set(hostkinds.HOST_KINDS) == set(typing.get_args(HostKind))


REFUSED = [
    pytest.param(
        [("host.kind", "rootless")],
        "ports.http: rootless Docker cannot publish host ports below 1024",
        id="rootless-port-80-refused",
    ),
    pytest.param(
        [("host.kind", "rootless"), ("ports.http", 8080), ("ports.https", 8443), ("ports.sip", 506)],
        'ports.sip: rootless Docker cannot publish host ports below 1024: it binds them as an ordinary user, and the host\'s '
        "net.ipv4.ip_unprivileged_port_start is 1024 unless changed (got 506); set ports.sip to 8506",
        id="rootless-low-sip-refused",
    ),
    pytest.param(
        [("host.kind", "rootless"), ("ports", ROOTLESS_PORTS), ("host.userland_proxy", False)],
        "host.userland_proxy: rootless Docker cannot run without the userland proxy: rootlesskit forwards every published port through it (got false)",
        id="rootless-userland-proxy-off",
    ),
    pytest.param(
        [("host.kind", "rootless"), ("ports", ROOTLESS_PORTS), ("network.mode", "ipvlan"), ("network.lan", LAN)],
        'network.mode: "ipvlan" does not work on rootless: rootless Docker cannot create macvlan/ipvlan networks',
        id="rootless-ipvlan",
    ),
    pytest.param(
        [("host.kind", "docker-desktop"), ("network.mode", "macvlan"), ("network.lan", LAN)],
        'network.mode: "macvlan" does not work on docker-desktop: Docker Desktop runs containers in a VM',
        id="desktop-macvlan",
    ),
    pytest.param(
        [("host.kind", "rootless"), ("host.low_ports", "remap"), ("ports.http", 80), ("ports.https", 8080)],
        "ports.https: host port 8080 is used by both ports.http (remapped from 80 by host.low_ports) and ports.https",
        id="rootless-remap-collides",
    ),
    pytest.param([("network.lan", LAN)], 'network.lan: only used with network.mode = "ipvlan" or "macvlan"', id="lan-without-mode"),
    pytest.param([("network.mode", "ipvlan")], 'network.lan: mode "ipvlan" needs [network.lan]', id="mode-without-lan"),
    pytest.param(
        [("network.mode", "ipvlan"), ("network.lan", {**LAN, "subnet": "10.22.0.0/16", "gateway": "10.22.0.1", "address": "10.22.0.50"})],
        "network.lan.subnet: 10.22.0.0/16 overlaps the compose subnet",
        id="lan-overlaps-compose-subnet",
    ),
    pytest.param(
        [("network.mode", "ipvlan"), ("network.lan", {**LAN, "address": "192.168.1.1"})],
        "network.lan.address: Asterisk's address cannot be the gateway's",
        id="lan-address-is-gateway",
    ),
    pytest.param(
        [("network.mode", "ipvlan"), ("network.lan", {**LAN, "address": "192.168.2.50"})],
        "network.lan.address: 192.168.2.50 is not a host address of network.lan.subnet 192.168.1.0/24",
        id="lan-address-outside-subnet",
    ),
    pytest.param(
        [("network.mode", "ipvlan"), ("network.lan", {**LAN, "parent": "eth0; rm -rf /"})],
        "network.lan.parent: String should match pattern",
        id="lan-parent-not-an-interface-name",
    ),
    pytest.param([("network.mode", "host")], 'network.mode: network mode "host" is refused', id="host-network"),
]


@pytest.mark.parametrize(("patches", "expected"), REFUSED)
def test_host_kind_rule_refuses_with_its_reason(patches: list[tuple[str, Any]], expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        _validate(_data(*patches))
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert expected in caught.value.render()


LOW_PORTS = {"sip": (506, 5060), "http": (80, 8080), "https": (443, 8443)}


@pytest.mark.parametrize(
    "low",
    [tuple(name for index, name in enumerate(LOW_PORTS) if mask >> index & 1) for mask in range(1, 8)],
    ids=lambda low: "+".join(low),
)
def test_rootless_names_every_low_port_in_one_run(tmp_path: Path, low: tuple[str, ...]) -> None:
    # One run shows every port below 1024, each at its own line, not one per run (issue 15).
    import tomllib

    ports = "".join(f"{name} = {LOW_PORTS[name][0 if name in low else 1]}\n" for name in LOW_PORTS)
    text = f'schema_version = 2\n[project]\nname = "acme"\n[host]\nkind = "rootless"\n[network]\nbind_ip = "192.168.1.10"\n[capacity]\nconcurrent_calls = 10\n[ports]\n{ports}'
    with pytest.raises(ProfileError) as caught:
        validate_profile(tomllib.loads(text), file="acme.toml", text=text, env={})
    assert caught.value.exit_code == EXIT_BAD_INPUT
    rendered = [issue.render() for issue in caught.value.issues]
    lines = {"sip": 11, "http": 12, "https": 13}
    assert rendered == [
        f"acme.toml:{lines[name]}: ports.{name}: rootless Docker cannot publish host ports below 1024: it binds them as an ordinary user, "
        f"and the host's net.ipv4.ip_unprivileged_port_start is 1024 unless changed (got {LOW_PORTS[name][0]}); set ports.{name} to "
        f'{LOW_PORTS[name][0] + 8000}, or host.low_ports = "remap" to move every port below 1024 up by 8000, or host.low_ports = "allow" '
        "after lowering that sysctl on the host (`omnigen doctor` reads it)"
        for name in low
    ]


ACCEPTED = [
    pytest.param(
        [("host.kind", "rootless"), ("ports", ROOTLESS_PORTS)],
        ["rootless Docker loses UDP source addresses", "host.userland_proxy: rootless Docker cannot run without the userland proxy"],
        id="rootless-udp-source-and-proxy",
    ),
    pytest.param(
        [("host.kind", "rootless"), ("host.low_ports", "remap")],
        [
            "ports.http: 80 is below 1024, so it is published as 8080",
            "ports.https: 443 is below 1024, so it is published as 8443",
        ],
        id="rootless-remap",
    ),
    pytest.param([("host.kind", "rootless"), ("host.low_ports", "allow")], ["rootless Docker loses UDP source addresses"], id="rootless-allow"),
    pytest.param([("host.kind", "docker-desktop")], ["Docker Desktop is for development: UDP publishing is unreliable"], id="desktop-udp"),
    pytest.param(
        [("host.kind", "docker-desktop"), ("host.userland_proxy", False)],
        ["host.userland_proxy: Docker Desktop forwards every published port from its VM"],
        id="desktop-proxy-off-still-forwards",
    ),
    pytest.param(
        [("host.kind", "lxc-unprivileged"), ("components.webrtc", True), ("capacity.concurrent_calls", 10)],
        ["unprivileged LXC cannot load kernel modules: media relays must forward in userspace (rtpengine table = -1)", "run `omnigen doctor`"],
        id="lxc-unprivileged-no-modules",
    ),
    pytest.param([("host.kind", "lxc-privileged")], ["the fix is on the LXC host"], id="lxc-privileged-sysctl-hint"),
    pytest.param(
        [("host.kind", "lxc-unprivileged"), ("network.mode", "ipvlan"), ("network.lan", LAN)],
        ['network.mode: "ipvlan" on lxc-unprivileged: macvlan/ipvlan are usually unavailable in an unprivileged container'],
        id="lxc-unprivileged-ipvlan-warned",
    ),
    pytest.param(
        [("network.mode", "macvlan"), ("network.lan", LAN)],
        ['"macvlan" on vps: most VPS providers drop frames from unknown MAC addresses'],
        id="vps-macvlan-warned",
    ),
    pytest.param(
        [("host.kind", "bare-metal"), ("network.mode", "ipvlan"), ("network.lan", LAN)],
        ["the host itself cannot reach 192.168.1.50 through its own ipvlan parent interface"],
        id="bare-metal-ipvlan",
    ),
    pytest.param([("host.low_ports", "remap")], ['host.low_ports: "remap" only applies to host.kind = "rootless"'], id="low-ports-ignored-off-rootless"),
]


def test_unprivileged_lxc_without_webrtc_has_no_media_relay_to_warn_about() -> None:
    warnings = "\n".join(_warnings(_validate(_data(("host.kind", "lxc-unprivileged")))))
    assert "rtpengine" not in warnings and "kernel modules" not in warnings
    assert "run `omnigen doctor`" in warnings  # the sysctl hint still applies


@pytest.mark.parametrize(("patches", "expected"), ACCEPTED)
def test_host_kind_caveat_is_a_plan_warning(patches: list[tuple[str, Any]], expected: list[str]) -> None:
    warnings = "\n".join(_warnings(_validate(_data(*patches))))
    for text in expected:
        assert text in warnings


def test_a_plain_vps_profile_has_no_warnings() -> None:
    assert _warnings(_validate(_data())) == []


def test_remapped_ports_are_what_compose_publishes() -> None:
    plan_ports = port_plan(_validate(_data(("host.kind", "rootless"), ("host.low_ports", "remap"))))
    nginx = {use.purpose: (use.start, use.remapped_from) for use in plan_ports.uses if use.service == "nginx"}
    assert nginx == {"HTTP (redirect)": (8080, 80), "HTTPS web UI": (8443, 443)}


def test_lan_modes_publish_nothing_of_asterisk() -> None:
    bridge = port_plan(_validate(_data(("host.kind", "bare-metal"))))
    lan = port_plan(_validate(_data(("host.kind", "bare-metal"), ("network.mode", "ipvlan"), ("network.lan", LAN))))
    assert any(use.service == "asterisk" for use in bridge.uses)
    assert not any(use.service == "asterisk" for use in lan.uses)
    assert lan.ranges["asterisk"] == bridge.ranges["asterisk"]
    assert lan.published == bridge.published - bridge.ranges["asterisk"].size - 2


# --- Budgets -------------------------------------------------------------------------------------

KINDS = typing.get_args(HostKind)
SETTINGS = [(kind, proxy) for kind in KINDS for proxy in (True, False) if hostkinds.userland_proxy_refusal(kind, proxy) is None]


@pytest.mark.parametrize(("kind", "proxy"), SETTINGS)
@pytest.mark.parametrize("offset", [-1, 0, 1], ids=["just-under", "at", "just-over"])
def test_port_budget_edge(kind: str, proxy: bool, offset: int) -> None:
    budget = hostkinds.port_budget(kind, proxy)
    ports = budget.ports + offset
    effective = hostkinds.effective_userland_proxy(kind, proxy)
    assert hostkinds.within(kind, costs.publishing_cost(ports, 0, effective)) is (offset <= 0)


@pytest.mark.parametrize(("kind", "proxy"), SETTINGS)
def test_budget_follows_from_the_limits_and_the_measured_costs(kind: str, proxy: bool) -> None:
    facts = hostkinds.facts(kind)
    budget = hostkinds.port_budget(kind, proxy)
    if hostkinds.effective_userland_proxy(kind, proxy):
        assert budget.ports <= math.floor(facts.proxy_memory_mib / costs.mib_per_proxy())
    assert costs.start_seconds(budget.ports, hostkinds.effective_userland_proxy(kind, proxy), True) <= facts.start_seconds


def test_disabling_the_proxy_raises_the_budget_where_it_can_be_disabled() -> None:
    for kind in ("vps", "bare-metal", "lxc-unprivileged", "lxc-privileged"):
        assert hostkinds.port_budget(kind, False).ports > 3 * hostkinds.port_budget(kind, True).ports
    assert hostkinds.port_budget("docker-desktop", False).ports == hostkinds.port_budget("docker-desktop", True).ports


def test_docker_desktop_budget_is_the_smallest_and_under_the_reported_failure() -> None:
    desktop = hostkinds.port_budget("docker-desktop", True).ports
    assert desktop < 500  # docker/for-mac#1852: 500 UDP ports fail
    assert all(desktop <= hostkinds.port_budget(kind, True).ports for kind in KINDS)


def _published_for(calls: int, headroom: int = 20, supervised: int = 10) -> int:
    """Independent arithmetic: 2 channels per call + supervised ones, 2 ports each, headroom, rounded even; + SIP x2 + HTTP/S."""
    channels = 2 * calls + math.ceil(calls * supervised / 100)
    size = math.ceil(channels * 2 * (100 + headroom) / 100)
    return size + size % 2 + 4


def _kind_patches(kind: str, proxy: bool) -> list[tuple[str, Any]]:
    patches: list[tuple[str, Any]] = [("host.kind", kind), ("host.userland_proxy", proxy)]
    return patches + ([("ports", ROOTLESS_PORTS)] if kind == "rootless" else [])


@pytest.mark.parametrize(("kind", "proxy"), SETTINGS)
def test_largest_capacity_within_budget_is_accepted_and_one_more_call_refused(kind: str, proxy: bool) -> None:
    budget = hostkinds.port_budget(kind, proxy).ports
    most = max(calls for calls in range(1, 2000) if _published_for(calls) <= budget)
    fits = _validate(_data(*_kind_patches(kind, proxy), ("capacity.concurrent_calls", most)))
    assert port_plan(fits).published == _published_for(most) <= budget
    with pytest.raises(ProfileError) as caught:
        _validate(_data(*_kind_patches(kind, proxy), ("capacity.concurrent_calls", most + 1)))
    message = caught.value.render()
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert f"capacity.concurrent_calls: {most + 1} calls publish {_published_for(most + 1)} host ports" in message
    assert f"over the budget of {budget} ports" in message
    assert f"lower capacity.concurrent_calls to at most {most}" in message
    assert "docker-proxy" in message and " s " in message


def test_budget_error_offers_the_ways_out_this_host_kind_has() -> None:
    with pytest.raises(ProfileError) as vps:
        _validate(_data(("capacity.concurrent_calls", 200)))
    text = vps.value.render()
    assert '"userland-proxy": false` in /etc/docker/daemon.json' in text
    assert 'network.mode = "ipvlan"' in text
    with pytest.raises(ProfileError) as rootless:
        _validate(_data(("host.kind", "rootless"), ("ports", ROOTLESS_PORTS), ("capacity.concurrent_calls", 200)))
    text = rootless.value.render()
    assert "disable the userland proxy" not in text  # rootless cannot: not offered
    assert "ipvlan" not in text  # nor a LAN mode
    assert "lower capacity.concurrent_calls to at most" in text


def test_budget_error_is_located_at_the_capacity_line(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        'schema_version = 2\n[project]\nname = "big"\n[host]\nkind = "vps"\n[network]\nbind_ip = "192.168.1.10"\n'
        "[capacity]\nconcurrent_calls = 500\n"
    )
    from omnigen.loading import load_profile

    with pytest.raises(ProfileError) as caught:
        load_profile(path, {})
    assert caught.value.render().startswith(f"{path}:9: capacity.concurrent_calls: 500 calls publish")


@pytest.mark.parametrize("example", ["call-center-500", "call-center-200", "vps-nat", "rootless", "proxmox-lxc", "lan-office"])
def test_example_profiles_fit_their_budgets(example: str) -> None:
    from tests.conftest import ROOT

    compiled = compile_example(ROOT / "profiles" / f"{example}.toml")
    plan = compiled.plan
    total = sum(port.count for port in plan.all_published)
    kind = plan.host_kind
    assert total <= hostkinds.port_budget(kind, True).ports or total <= hostkinds.port_budget(kind, False).ports


def test_budget_table_in_the_docs_is_what_the_code_computes() -> None:
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "capacity.md").read_text()
    for kind in KINDS:
        row = next(line for line in doc.splitlines() if line.startswith(f"| {kind} | ") and "MiB" in line)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        facts = hostkinds.facts(kind)
        assert cells[1] == f"{facts.proxy_memory_mib:g} MiB" and cells[2] == f"{facts.start_seconds:g} s"
        for cell, proxy in ((cells[3], True), (cells[4], False)):
            if hostkinds.userland_proxy_refusal(kind, proxy):
                assert cell == "impossible"
                continue
            budget = hostkinds.port_budget(kind, proxy).ports
            most = max(calls for calls in range(1, 2000) if _published_for(calls) <= budget)
            assert cell == f"{budget} ports ({most} calls)", kind
