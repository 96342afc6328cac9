"""[[hosts]] validation: every refusal is located at the key to change (exit 2), and valid
placements give each host exactly its role's services and published ports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omnigen.catalog.services import role_services
from omnigen.errors import ProfileError
from omnigen.inputs.profile import Profile
from omnigen.loading import load_profile
from omnigen.plan import placement
from omnigen.plan.capacity import asterisk_need, host_port_plan
from tests.conftest import ROOT, run_cli

BASE = """\
schema_version = 2

[project]
name = "acme"

[host]
kind = "bare-metal"
userland_proxy = false

[capacity]
concurrent_calls = 100
"""
DATA_WEB_EDGE = """
[[hosts]]
name = "main"
address = "10.10.0.11"
public_ip = "203.0.113.11"
roles = ["data", "web", "edge"]
"""
VOICE = """
[[hosts]]
name = "voice1"
address = "10.10.0.21"
public_ip = "203.0.113.21"
roles = ["voice"]
calls = 100
"""


def _load(tmp_path: Path, text: str) -> Profile:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return load_profile(path, {})


def _refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProfileError) as caught:
        _load(tmp_path, text)
    return caught.value.render()


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The line starting with `needle` (its `occurrence`-th)."""
    lines = [number for number, line in enumerate(text.splitlines(), start=1) if line.startswith(needle)]
    return lines[occurrence - 1]


def test_a_valid_two_host_profile_places_every_role(tmp_path: Path) -> None:
    profile = _load(tmp_path, BASE + DATA_WEB_EDGE + VOICE)
    assert [host.name for host in profile.hosts] == ["main", "voice1"]
    assert placement.services_of(profile.hosts[1].roles) == ("asterisk",)
    assert set(placement.services_of(profile.hosts[0].roles)) == {
        service for role in ("data", "web", "edge") for service in role_services(role)
    }
    # Asterisk reads no database; the backend and the dialer on main log in to voice1's AMI and ARI,
    # which voice1 publishes on its private address (and nothing of main's data services).
    assert placement.peer_published(profile, profile.hosts[0]) == ()
    assert placement.peer_published(profile, profile.hosts[1]) == ("asterisk-ami", "asterisk-http")
    assert placement.remote_asterisk_clients(profile, profile.hosts[1]) == (str(profile.hosts[0].address),)


def test_a_profile_without_hosts_has_none_and_validates_as_before(tmp_path: Path) -> None:
    profile = load_profile(ROOT / "profiles" / "vps-nat.toml", {})
    assert profile.hosts == ()


@pytest.mark.parametrize(
    ("mutation", "key", "line_of", "said"),
    [
        # the role edge placed nowhere
        (lambda text: text.replace('roles = ["data", "web", "edge"]', 'roles = ["data", "web"]'), "hosts", None, "no host has the role 'edge'"),
        (lambda text: text.replace("\ncalls = 100\n", "\ncalls = 90\n"), "hosts", None, "voice1 90 = 90 calls, but capacity.concurrent_calls is 100"),
        (lambda text: text.replace('name = "voice1"', 'name = "main"'), "hosts.1.name", ('name = "main"', 2), "already the name of hosts.0"),
        (lambda text: text.replace('address = "10.10.0.21"', 'address = "10.10.0.11"'), "hosts.1.address", ('address = "10.10.0.11"', 2), "already the address"),
        (lambda text: text.replace('address = "10.10.0.21"', 'address = "198.51.100.21"'), "hosts.1.address", ('address = "198.51.100.21"', 1), "must be a private address"),
        (lambda text: text.replace('address = "10.10.0.21"', 'address = "10.22.22.5"'), "hosts.1.address", ('address = "10.22.22.5"', 1), "inside network.subnet"),
        (lambda text: text.replace("\ncalls = 100\n", "\n"), "hosts.1.calls", ("[[hosts]]", 2), "a voice host needs its share"),
        (lambda text: text.replace('roles = ["data", "web", "edge"]', 'roles = ["data", "web", "edge"]\ncalls = 5'), "hosts.0.calls", ("calls = 5", 1), "only voice hosts carry calls"),
        (lambda text: text.replace("\ncalls = 100\n", "\ncalls = 100\nrtp_start = 10001\n"), "hosts.1.rtp_start", ("rtp_start = 10001", 1), "must be even"),
        (lambda text: text.replace('roles = ["voice"]', 'roles = ["voice", "voice"]'), "hosts.1.roles", ('roles = ["voice", "voice"]', 1), "listed twice"),
        (lambda text: text.replace('roles = ["voice"]', 'roles = ["voice"]\nkind = "rootless"'), "hosts.1.kind", ('kind = "rootless"', 1), "cannot be a host of a multi-host deployment"),
        (lambda text: text.replace('roles = ["data", "web", "edge"]', 'roles = ["data", "web"]') + '\n[[hosts]]\nname = "edge1"\naddress = "10.10.0.31"\nroles = ["edge"]\n', "hosts.2.roles", ('roles = ["edge"]', 1), "give 'edge' to the host with 'web'"),
        (lambda text: text + '\n[[hosts]]\nname = "data2"\naddress = "10.10.0.12"\nroles = ["data"]\n', "hosts.2.roles", ('roles = ["data"]', 1), "it runs once"),
        (lambda text: text.replace("[capacity]", '[components]\nwebrtc = true\n\n[capacity]'), "components.webrtc", ("webrtc = true", 1), "need fixed container addresses"),
        (lambda text: text.replace("[capacity]", '[network]\npublic_ip = "203.0.113.9"\n\n[capacity]'), "network.public_ip", ('public_ip = "203.0.113.9"', 1), "set hosts[].public_ip instead"),
        (lambda text: text.replace('kind = "bare-metal"', 'kind = "docker-desktop"'), "host.kind", ('kind = "docker-desktop"', 1), "cannot be a host of a multi-host deployment"),
    ],
    ids=[
        "role-unplaced", "calls-do-not-add-up", "duplicate-name", "duplicate-address", "public-address", "address-in-subnet",
        "voice-without-calls", "calls-on-non-voice", "odd-rtp-start", "role-twice", "rootless-host", "edge-away-from-web",
        "data-twice", "webrtc", "network-public-ip", "desktop-default-kind",
    ],
)  # fmt: skip
def test_refusals_name_the_key_and_line(tmp_path: Path, mutation, key: str, line_of: tuple[str, int] | None, said: str) -> None:  # type: ignore[no-untyped-def]
    text = mutation(BASE + DATA_WEB_EDGE + VOICE)
    message = _refusal(tmp_path, text)
    assert said in message, message
    if line_of is None:
        assert re.search(rf"site\.toml:\d+: {re.escape(key)}: ", message), message
    else:
        assert f"site.toml:{_line_of(text, *line_of)}: {key}: " in message, message


def test_each_voice_hosts_range_is_sized_from_its_own_share(tmp_path: Path) -> None:
    text = BASE.replace("concurrent_calls = 100", "concurrent_calls = 130") + DATA_WEB_EDGE + VOICE.replace("calls = 100", "calls = 30")
    text += '\n[[hosts]]\nname = "voice2"\naddress = "10.10.0.22"\npublic_ip = "203.0.113.22"\nroles = ["voice"]\ncalls = 100\n'
    profile = _load(tmp_path, text)
    capacity = profile.capacity
    for index, calls in ((1, 30), (2, 100)):
        rtp = host_port_plan(profile, index).bundle.ranges["asterisk"]
        need = asterisk_need(calls, capacity.headroom_percent, capacity.supervised_percent, capacity.video)
        assert (rtp.start, rtp.size, rtp.calls) == (profile.rtp.start, need.size, calls)
        assert rtp.start % 2 == 0 and rtp.end % 2 == 1


def test_a_voice_host_over_its_budget_is_told_how_many_calls_fit(tmp_path: Path) -> None:
    # A VPS with docker-proxy on affords ~339 published ports; 200 calls publish 1010 there.
    text = BASE.replace('kind = "bare-metal"\nuserland_proxy = false', 'kind = "vps"').replace("concurrent_calls = 100", "concurrent_calls = 200")
    text += DATA_WEB_EDGE + VOICE.replace("calls = 100", "calls = 200")
    message = _refusal(tmp_path, text)
    assert f"site.toml:{_line_of(text, 'calls = 200')}: hosts.1.calls: voice1 publishes" in message, message
    most = int(re.search(r"lower hosts\.1\.calls to at most (\d+)", message).group(1))  # type: ignore[union-attr]
    assert 0 < most < 200
    fitting = text.replace("concurrent_calls = 200", f"concurrent_calls = {most}").replace("calls = 200\n", f"calls = {most}\n")
    assert _load(tmp_path, fitting).hosts[1].calls == most
    over = text.replace("concurrent_calls = 200", f"concurrent_calls = {most + 1}").replace("calls = 200\n", f"calls = {most + 1}\n")
    assert "hosts.1.calls" in _refusal(tmp_path, over)


def test_hosts_behind_one_public_address_must_not_share_a_port_there(tmp_path: Path) -> None:
    second = '\n[[hosts]]\nname = "voice2"\naddress = "10.10.0.22"\npublic_ip = "203.0.113.21"\nroles = ["voice"]\ncalls = 50\n'
    text = BASE + DATA_WEB_EDGE + VOICE.replace("calls = 100", "calls = 50") + second
    message = _refusal(tmp_path, text)
    assert "voice1 and voice2 both advertise 203.0.113.21 and both publish 5060/udp there" in message, message
    # voice2 has no sip_port yet: the message points at its table and names the key to add.
    assert f"site.toml:{_line_of(text, '[[hosts]]', 3)}: hosts.2.sip_port: " in message, message
    with_sip = text.replace("calls = 50\n", "calls = 50\nsip_port = 5062\n")
    with_sip = with_sip.replace("sip_port = 5062\n", "", 1)  # only voice2's: the first "calls = 50" is voice1's
    message = _refusal(tmp_path, with_sip)
    assert "both publish 10000-10251/udp there" in message and "could start at 10252" in message, message
    assert f"site.toml:{_line_of(with_sip, '[[hosts]]', 3)}: hosts.2.rtp_start: " in message, message
    fixed = with_sip.replace("sip_port = 5062\n", "sip_port = 5062\nrtp_start = 10252\n")
    profile = _load(tmp_path, fixed)
    assert host_port_plan(profile, 2).bundle.ranges["asterisk"].start == 10252


def test_the_cli_exits_2_with_the_located_message(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text(BASE + DATA_WEB_EDGE + VOICE.replace("calls = 100", "calls = 99"))
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "hosts: the voice hosts carry voice1 99 = 99 calls" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
