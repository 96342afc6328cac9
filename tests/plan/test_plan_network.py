"""Network modes: ipvlan/macvlan render, pass real Compose and the verify stage; bridge is unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnigen.errors import VerifyError
from omnigen.verify import verify
from tests.conftest import ROOT, compile_example, compose_json, write_files

CC500 = ROOT / "profiles" / "call-center-500.toml"


@pytest.mark.parametrize(("mode", "option", "value"), [("ipvlan", "ipvlan_mode", "l2"), ("macvlan", "macvlan_mode", "bridge")])
def test_lan_mode_compose_reads_back_as_planned(tmp_path: Path, mode: str, option: str, value: str) -> None:
    compiled = compile_example(CC500, environ={"OMNIGEN_NETWORK__MODE": mode})
    data: dict[str, Any] = compose_json(write_files(tmp_path, compiled.files))
    lan = data["networks"]["omnivoip_lan"]  # type: ignore[index]
    assert lan["driver"] == mode
    assert lan["driver_opts"] == {"parent": "eno1", option: value}
    assert lan["ipam"]["config"] == [{"subnet": "192.168.10.0/24", "gateway": "192.168.10.1", "ip_range": "192.168.10.21/32"}]
    asterisk = data["services"]["asterisk"]  # type: ignore[index]
    assert "ports" not in asterisk
    assert asterisk["networks"]["omnivoip_lan"] == {"ipv4_address": "192.168.10.21", "priority": 100, "gw_priority": 100}
    assert asterisk["networks"]["omnivoip_net"]["ipv4_address"] == "10.50.0.10"
    published = {name for name, service in data["services"].items() if service.get("ports")}  # type: ignore[union-attr]
    assert published == {"nginx"}


def test_lan_mode_advertises_the_nat_address_and_treats_the_lan_as_local() -> None:
    files = compile_example(CC500).files
    assert "external_media_address=198.51.100.21" in files["asterisk/pjsip.conf"]
    assert "local_net=192.168.10.0/24" in files["asterisk/pjsip.conf"]
    assert 'EXTERNAL_IP="198.51.100.21"' in files[".env"]
    assert "rtpstart=20000\nrtpend=22519\n" in files["asterisk/rtp.conf"]


def test_without_public_ip_the_lan_address_is_advertised(tmp_path: Path) -> None:
    text = CC500.read_text()
    assert 'public_ip = "198.51.100.21"\n' in text
    profile = tmp_path / "lan.toml"
    profile.write_text(text.replace('public_ip = "198.51.100.21"\n', ""))
    compiled = compile_example(profile, environ={"OMNIGEN_NETWORK__LAN__ADDRESS": "192.168.10.30"})
    assert compiled.plan.network.advertised_ip == "192.168.10.30"
    assert "external_media_address=192.168.10.30" in compiled.files["asterisk/pjsip.conf"]


def test_bridge_mode_has_no_lan_network() -> None:
    files = compile_example(ROOT / "profiles" / "vps-nat.toml").files
    assert "omnivoip_lan" not in files["docker-compose.yml"]
    assert "priority" not in files["docker-compose.yml"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('ipv4_address: "192.168.10.21"', 'ipv4_address: "192.168.10.22"', "asterisk joins omnivoip_lan"),
        ('parent: "eno1"', 'parent: "eth9"', "network omnivoip_lan is"),
        ('ip_range: "192.168.10.21/32"', 'ip_range: "192.168.10.0/24"', "network omnivoip_lan is"),
    ],
    ids=["address", "parent", "ip-range"],
)
def test_verify_refuses_a_lan_network_that_differs_from_the_plan(old: str, new: str, expected: str) -> None:
    compiled = compile_example(CC500)
    files = dict(compiled.files)
    assert old in files["docker-compose.yml"]
    files["docker-compose.yml"] = files["docker-compose.yml"].replace(old, new)
    with pytest.raises(VerifyError, match=expected):
        verify(compiled.plan, files)


def test_verify_refuses_a_lan_network_in_bridge_mode() -> None:
    compiled = compile_example(ROOT / "profiles" / "lan-office.toml")
    files = dict(compiled.files)
    files["docker-compose.yml"] = files["docker-compose.yml"].replace(
        "\nvolumes:\n", '\n  extra:\n    driver: "macvlan"\n\nvolumes:\n', 1
    )
    with pytest.raises(VerifyError, match=r"networks \['extra'\] are not bridge networks"):
        verify(compiled.plan, files)
