"""components.webrtc in the plan and the outputs: off changes nothing, on adds
Kamailio and rtpengine consistently (ranges, addresses, ports, hardening)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnigen.errors import ProfileError
from omnigen.formats.kamailiocfg import KamailioValueError, cfg_value
from omnigen.pipeline import Compiled
from omnigen.plan.plan import ACME_OUTPUTS, FIREWALL_OUTPUTS, OUTPUTS, WEBRTC_OUTPUTS
from tests.conftest import EXAMPLES, ROOT, compile_example, compose_json, run_compose, snapshot_suffix, write_files

PROFILE = ROOT / "profiles" / "webrtc.toml"


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_example(PROFILE)


@pytest.fixture(scope="module")
def normalised(compiled: Compiled, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = write_files(tmp_path_factory.mktemp("webrtc"), compiled.files)
    quiet = run_compose(folder, "config", "-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    return compose_json(folder)


@pytest.mark.parametrize("relative", [dest for _, dest in WEBRTC_OUTPUTS], ids=lambda dest: dest.replace("/", "_"))
def test_edge_output_snapshot(compiled: Compiled, relative: str, snapshot_as) -> None:  # type: ignore[no-untyped-def]
    assert snapshot_as(snapshot_suffix(relative)) == compiled.files[relative]


@pytest.mark.parametrize("profile", [path for path in EXAMPLES if path != PROFILE], ids=lambda path: path.stem)
def test_without_webrtc_nothing_of_the_edge_is_generated(profile: Path) -> None:
    compiled = compile_example(profile)
    assert compiled.plan.webrtc is None
    assert tuple(compiled.files) == tuple(dest for _, dest in OUTPUTS + FIREWALL_OUTPUTS + (ACME_OUTPUTS if compiled.plan.tls.acme else ())) + tuple(compiled.plan.secret_env)
    assert "secrets/kamailio.env" not in compiled.files
    for text in compiled.files.values():
        assert "kamailio" not in text.lower() and "rtpengine" not in text.lower() and "WEBRTC_" not in text


def _profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        'schema_version = 2\n[project]\nname = "edge"\n[network]\npublic_ip = "203.0.113.10"\n[components]\nwebrtc = true\n' + body
    )
    return path


def test_rtpengine_range_follows_asterisk_without_overlap(compiled: Compiled) -> None:
    webrtc = compiled.plan.webrtc
    assert webrtc is not None
    asterisk, relay = compiled.plan.rtp, webrtc.rtp
    assert relay.start == asterisk.end + 1
    assert relay.start % 2 == 0 and relay.end % 2 == 1
    assert relay.size >= 4 * relay.calls
    assert relay.ports_needed == 4 * compiled.plan.rtp.calls


def test_rtpengine_range_goes_before_asterisk_when_after_does_not_fit(tmp_path: Path) -> None:
    compiled = compile_example(_profile(tmp_path, "[capacity]\nconcurrent_calls = 20\n[rtp]\nstart = 65400\n"))
    assert compiled.plan.webrtc is not None
    relay, asterisk = compiled.plan.webrtc.rtp, compiled.plan.rtp
    assert relay.end == asterisk.start - 1
    assert relay.start % 2 == 0


def test_no_room_for_rtpengine_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as error:
        compile_example(_profile(tmp_path, "[capacity]\nconcurrent_calls = 7000\n[rtp]\nstart = 6000\n"))
    assert "rtpengine" in str(error.value)


@pytest.mark.parametrize(
    ("extra", "url"),
    [
        ('[project]\ndomain = "x.example.com"\n', "wss://x.example.com/ws"),
        ("[ports]\nhttps = 8443\n", "wss://203.0.113.10:8443/ws"),
    ],
    ids=["domain-443", "address-8443"],
)
def test_wss_url_is_where_nginx_is_published(tmp_path: Path, extra: str, url: str) -> None:
    path = tmp_path / "edge.toml"
    project = 'name = "edge"\n' + (extra.split("\n", 1)[1] if extra.startswith("[project]") else "")
    ports = extra if extra.startswith("[ports]") else ""
    path.write_text(
        f'schema_version = 2\n[project]\n{project}[network]\npublic_ip = "203.0.113.10"\n[capacity]\nconcurrent_calls = 10\n[components]\nwebrtc = true\n{ports}'
    )
    compiled = compile_example(path)
    assert compiled.plan.webrtc is not None
    assert compiled.plan.webrtc.wss_url == url
    assert compiled.plan.env_map["WEBRTC_WSS_URL"] == url
    assert compiled.plan.webrtc.advertised_port == (8443 if "8443" in url else 443)


def test_edge_services_are_hardened_like_the_others(compiled: Compiled, normalised: dict[str, Any]) -> None:
    services = normalised["services"]
    for name in ("kamailio", "rtpengine"):
        service = services[name]
        assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert "privileged" not in service and "network_mode" not in service
        limits = service["deploy"]["resources"]["limits"]
        assert limits["memory"] and limits["pids"] and limits["cpus"]
        assert service["healthcheck"]["test"][0] == "CMD"


def test_edge_services_use_the_planned_addresses_ports_and_commands(compiled: Compiled, normalised: dict[str, Any]) -> None:
    webrtc = compiled.plan.webrtc
    assert webrtc is not None
    services = normalised["services"]
    network = compiled.plan.network.name
    assert services["kamailio"]["networks"][network]["ipv4_address"] == webrtc.kamailio_ip
    assert services["rtpengine"]["networks"][network]["ipv4_address"] == webrtc.rtpengine_ip
    assert services["kamailio"]["command"] == list(webrtc.kamailio_command)
    assert services["rtpengine"]["command"] == list(webrtc.rtpengine_command)
    assert services["kamailio"]["healthcheck"]["test"] == list(webrtc.kamailio_healthcheck)
    assert services["rtpengine"]["healthcheck"]["test"] == list(webrtc.rtpengine_healthcheck)
    # Kamailio is reached through nginx only; rtpengine publishes exactly its media range, host == container.
    assert "ports" not in services["kamailio"]
    media = services["rtpengine"]["ports"]  # Compose lists a range port by port
    assert sorted(int(port["target"]) for port in media) == list(range(webrtc.rtp.start, webrtc.rtp.end + 1))
    assert all(str(port["published"]) == str(port["target"]) for port in media)
    assert {(port["host_ip"], port["protocol"]) for port in media} == {(compiled.plan.network.bind_ip, "udp")}
    assert "kamailio" in services["nginx"]["depends_on"]
    # The backend has no WebRTC credential endpoint (docs/application.md): only Kamailio reads the secret.
    assert services["kamailio"]["environment"]["WEBRTC_AUTH_SECRET"] == compiled.plan.env_map["WEBRTC_AUTH_SECRET"]
    assert not {"WEBRTC_AUTH_SECRET", "WEBRTC_WSS_URL"} & set(services["django-app"]["environment"])
    assert compiled.plan.env_map["WEBRTC_WSS_URL"] == webrtc.wss_url
    assert compiled.plan.env_map["WEBRTC_AUTH_SECRET"] in compiled.plan.secret_values


def test_kamailio_config_holds_no_secret(compiled: Compiled) -> None:
    secret = compiled.plan.env_map["WEBRTC_AUTH_SECRET"]
    assert all(secret not in text for name, text in compiled.files.items() if name not in compiled.plan.secret_files)


def test_pjsip_trusts_kamailio_at_its_static_address(compiled: Compiled) -> None:
    from omnigen.formats.asteriskconf import parse_conf

    webrtc = compiled.plan.webrtc
    assert webrtc is not None
    conf = parse_conf(compiled.files["asterisk/pjsip.conf"])
    by_type = {(section.name, section.get("type").value) for section in conf.sections if section.get("type")}  # type: ignore[union-attr]
    assert {("kamailio", "endpoint"), ("kamailio", "aor"), ("kamailio", "identify")} <= by_type
    identify = next(s for s in conf.sections if s.name == "kamailio" and s.get("type").value == "identify")  # type: ignore[union-attr]
    assert identify.get("match").value == webrtc.kamailio_ip  # type: ignore[union-attr]
    aor = next(s for s in conf.sections if s.name == "kamailio" and s.get("type").value == "aor")  # type: ignore[union-attr]
    assert aor.get("contact").value == f"sip:{webrtc.kamailio_ip}:{webrtc.sip_port}"  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ['a"b', "a b", "a\nb", "a;b", "#x", "a\\b", ""])
def test_kamailio_values_refuse_what_could_add_configuration(value: str) -> None:
    with pytest.raises(KamailioValueError):
        cfg_value(value)


def test_safe_values_pass_unchanged() -> None:
    assert cfg_value("sip:10.0.0.1:5060") == "sip:10.0.0.1:5060"


_LAN = '[network.lan]\nparent = "eth0"\nsubnet = "192.168.1.0/24"\ngateway = "192.168.1.1"\naddress = "192.168.1.50"\n'


@pytest.mark.parametrize("bind_ip", [None, "192.168.1.10"], ids=["no-bind_ip", "bind_ip"])
@pytest.mark.parametrize("public_ip", [None, "203.0.113.10"], ids=["no-public_ip", "public_ip"])
@pytest.mark.parametrize("webrtc", [False, True], ids=["no-webrtc", "webrtc"])
@pytest.mark.parametrize("mode", ["bridge", "ipvlan", "macvlan"])
def test_explain_succeeds_exactly_when_build_does(tmp_path: Path, mode: str, webrtc: bool, public_ip: str | None, bind_ip: str | None) -> None:
    # Validation owns every refusal: a profile explain accepts must build, and build never
    # fails inside (exit 3) on what validation let through (issue 15: ipvlan + WebRTC did).
    from omnigen.cli import main

    network = f'[network]\nmode = "{mode}"\n'
    network += f'public_ip = "{public_ip}"\n' if public_ip else ""
    network += f'bind_ip = "{bind_ip}"\n' if bind_ip else ""
    path = tmp_path / "matrix.toml"
    path.write_text(
        f'schema_version = 2\n[project]\nname = "matrix"\n[host]\nkind = "bare-metal"\n{network}'
        + (_LAN if mode != "bridge" else "")
        + f"[capacity]\nconcurrent_calls = 20\n[components]\nwebrtc = {str(webrtc).lower()}\n"
    )
    explained = main(["explain", str(path)])
    built = main(["build", str(path), "-o", str(tmp_path / "out"), "-q"])
    assert built != 3
    assert (explained == 0) == (built == 0), (explained, built)
    # The one combination that cannot work is refused with its reason; every other one builds.
    refused = mode != "bridge" and webrtc and public_ip is None
    unaddressed = mode == "bridge" and public_ip is None and bind_ip is None
    assert built == (2 if refused or unaddressed else 0)


def test_lan_mode_webrtc_without_public_ip_names_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "lan.toml"
    path.write_text(
        'schema_version = 2\n[project]\nname = "lan"\n[network]\nmode = "ipvlan"\n' + _LAN + "[capacity]\nconcurrent_calls = 20\n[components]\nwebrtc = true\n"
    )
    from omnigen.loading import load_profile

    with pytest.raises(ProfileError) as caught:
        load_profile(path, {})
    rendered = caught.value.render()
    assert f"{path}:14: components.webrtc:" in rendered
    assert "192.168.1.50" in rendered and "set network.public_ip" in rendered and 'network.mode = "bridge"' in rendered
