"""Addresses phones cannot reach: refused where they can never work, warned about where they work only here."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from omnigen.inputs import reachability
from tests.conftest import run_cli

PROFILE = """\
schema_version = 2
[project]
name = "acme"
[network]
{network}
[capacity]
concurrent_calls = 5
"""


def _write(tmp_path: Path, network: str) -> Path:
    path = tmp_path / "acme.toml"
    path.write_text(PROFILE.format(network=network))
    return path


@pytest.mark.parametrize(
    ("network", "reason"),
    [
        ('public_ip = "169.254.10.1"', "a link-local address (169.254.0.0/16) is never forwarded by routers"),
        ('public_ip = "250.1.2.3"', "240.0.0.0/4 is reserved"),
        ('public_ip = "255.255.255.255"', "255.255.255.255 is broadcast"),
        ('public_ip = "0.1.2.3"', "0.0.0.0/8 is valid only as a source address"),
        ('public_ip = "127.0.0.1"', "public_ip must be a routable unicast address clients can reach"),
        ('bind_ip = "241.0.0.1"', "bind_ip cannot be a reserved address"),
        ('bind_ip = "0.0.0.7"', "bind_ip cannot be in 0.0.0.0/8"),
    ],
)
def test_an_address_no_phone_can_ever_reach_is_refused_with_the_reason(tmp_path: Path, network: str, reason: str) -> None:
    result = run_cli("build", str(_write(tmp_path, network)), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr
    assert f"{tmp_path / 'acme.toml'}:5: network." in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("network", "key", "reason"),
    [
        ('bind_ip = "127.0.0.1"', "network.bind_ip", "127.0.0.1 is advertised in SIP and SDP (external_media_address), but it is a loopback address"),
        ('bind_ip = "169.254.3.4"', "network.bind_ip", "link-local (169.254.0.0/16): routers never forward it"),
        ('public_ip = "100.64.1.2"', "network.public_ip", "carrier-grade NAT space (100.64.0.0/10"),
    ],
)
def test_an_address_only_some_can_reach_is_built_with_a_warning(tmp_path: Path, network: str, key: str, reason: str) -> None:
    """bind_ip 127.0.0.1 without public_ip used to write external_media_address=127.0.0.1 silently."""
    out = tmp_path / "out"
    built = run_cli("build", str(_write(tmp_path, network)), "-o", str(out))
    assert built.returncode == 0, built.stderr
    assert f"warning: {key}: " in built.stderr and reason in built.stderr
    explained = run_cli("explain", str(tmp_path / "acme.toml"))
    assert key in explained.stdout and "Warnings (1)" in explained.stdout


def test_routable_and_private_addresses_are_advertised_without_a_caveat() -> None:
    for text in ("203.0.113.10", "192.168.1.10", "10.0.0.5", "172.16.4.4", "8.8.8.8", "100.128.0.1"):
        ip = ipaddress.IPv4Address(text)
        assert reachability.advertised_caveat(ip) is None
        assert reachability.public_ip_refusal(ip) is None
        assert reachability.bind_ip_refusal(ip) is None


def test_every_refused_public_ip_is_one_the_old_rule_let_through_or_refused_the_same_way() -> None:
    """The three classes refused before keep their exact message (the Copier template and users' scripts quote it)."""
    for text in ("0.0.0.0", "127.0.0.53", "224.0.0.1"):
        assert reachability.public_ip_refusal(ipaddress.IPv4Address(text)) == reachability.PUBLIC_IP_RULE
