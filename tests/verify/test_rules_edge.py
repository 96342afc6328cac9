"""rules/edge.py: the generated WebRTC edge is clean, and each defect the
rules exist for, introduced into it one at a time, is reported by its rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnigen.pipeline import Compiled
from omnigen.verify.deployment import deployment_from_memory
from omnigen.verify.rules import Finding, RuleContext, run_rules
from tests.conftest import EXAMPLES, ROOT, compile_example

PROFILE = ROOT / "profiles" / "webrtc.toml"
REFERENCE_RTPENGINE = ROOT / "tests" / "reference" / "omnivoip-v2" / "configs" / "rtpengine" / "rtpengine.conf"


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_example(PROFILE)


def findings(files: dict[str, str], calls: int | None = None) -> list[Finding]:
    return run_rules(deployment_from_memory(files), RuleContext(calls=calls)).findings


def mutated(compiled: Compiled, path: str, old: str, new: str) -> dict[str, str]:
    files = dict(compiled.files)
    assert old in files[path], f"{old!r} is not in {path}: the mutation would test nothing"
    files[path] = files[path].replace(old, new, 1)
    return files


def test_generated_edge_is_clean(compiled: Compiled) -> None:
    assert findings(compiled.files, compiled.plan.rtp.calls) == []
    deployment = deployment_from_memory(compiled.files)
    assert {(config.name, config.service, config.target) for config in deployment.edge_configs} == {
        ("kamailio.cfg", "kamailio", "/etc/kamailio/kamailio.cfg"),
        ("dispatcher.list", "kamailio", "/etc/kamailio/dispatcher.list"),
        ("nginx.conf", "nginx", "/etc/nginx/nginx.conf"),
    }


@pytest.mark.parametrize("profile", [path for path in EXAMPLES if path != PROFILE], ids=lambda path: path.stem)
def test_edge_rules_are_silent_without_the_edge(profile: Path) -> None:
    compiled = compile_example(profile)
    assert compiled.plan.webrtc is None
    assert [finding for finding in findings(compiled.files, compiled.plan.rtp.calls) if finding.rule_id.startswith("OV3")] == []


def _plan_values(compiled: Compiled) -> dict[str, str]:
    webrtc = compiled.plan.webrtc
    assert webrtc is not None
    return {
        "kamailio": webrtc.kamailio_ip,
        "rtpengine": webrtc.rtpengine_ip,
        "asterisk": compiled.plan.network.asterisk_ip,
        "advertised": webrtc.advertised_ip,
        "ng": str(webrtc.ng_port),
        "ws": str(webrtc.ws_port),
        "https": str(webrtc.advertised_port),
        "sip": str(compiled.plan.sip_port),
        "rtp": f"{webrtc.rtp.start}-{webrtc.rtp.end}",
        "port_min": str(webrtc.rtp.start),
        "asterisk_start": str(compiled.plan.rtp.start),
        "bind": compiled.plan.network.bind_ip,
    }


# (id, file, old, new, rule, words the message must contain); {name} is a plan value.
MUTATIONS = [
    ("kernel-table", "rtpengine/rtpengine.conf", "table = -1", "table = 0", "OV214", "kernel forwarding"),
    ("no-table", "rtpengine/rtpengine.conf", "table = -1\n", "", "OV214", "no table"),
    ("two-listen-ng", "rtpengine/rtpengine.conf", "port-min = ", "listen-ng = 0.0.0.0:22222\nport-min = ", "OV213", "is set again"),
    ("sock-port", "kamailio/kamailio.cfg", 'udp:{rtpengine}:{ng}"', 'udp:{rtpengine}:22222"', "OV301", "does not reach"),
    ("ng-loopback", "rtpengine/rtpengine.conf", "listen-ng = {rtpengine}:{ng}", "listen-ng = 127.0.0.1:{ng}", "OV301", "does not reach"),
    ("placeholder-interface", "rtpengine/rtpengine.conf", "internal/{rtpengine};", "internal/PRIVATE_IP;", "OV302", "not an IP address"),
    ("foreign-interface", "rtpengine/rtpengine.conf", "internal/{rtpengine};", "internal/10.99.0.1;", "OV302", "container's address"),
    ("misspelt-interfaces", "rtpengine/rtpengine.conf", "\ninterface = ", "\ninterfaces = ", "OV302", "no option `interfaces`"),
    ("advertised-drift", "rtpengine/rtpengine.conf", "!{advertised}", "!198.51.100.99", "OV302", "Asterisk advertises"),
    ("nothing-advertised", "rtpengine/rtpengine.conf", "!{advertised}", "", "OV302", "no interface advertises"),
    ("range-overlap", "rtpengine/rtpengine.conf", "port-min = {port_min}", "port-min = {asterisk_start}", "OV303", "overlaps Asterisk"),
    ("range-odd-start", "rtpengine/rtpengine.conf", "port-min = {port_min}", "port-min = 1{port_min}1", "OV303", "start even"),
    ("range-unpublished", "docker-compose.yml", '      - "{bind}:{rtp}:{rtp}/udp"\n', "", "OV303", "is not published"),
    ("config-elsewhere", "docker-compose.yml", ":/etc/kamailio/kamailio.cfg:ro", ":/etc/kamailio/custom/kamailio.cfg:ro", "OV304", "Kamailio reads"),
    ("dispatcher-elsewhere", "docker-compose.yml", ":/etc/kamailio/dispatcher.list:ro", ":/etc/kamailio/custom/dispatcher.list:ro", "OV304", "list_file"),
    ("dispatcher-address", "kamailio/dispatcher.list", "sip:{asterisk}:", "sip:10.99.0.10:", "OV305", "Asterisk's address"),
    ("dispatcher-port", "kamailio/dispatcher.list", ":{sip} ", ":5080 ", "OV305", "transports bind"),
    ("listen-foreign", "kamailio/kamailio.cfg", "listen=udp:{kamailio}:", "listen=udp:10.99.0.11:", "OV306", "cannot bind"),
    ("advertise-port", "kamailio/kamailio.cfg", "advertise {advertised}:{https}", "advertise {advertised}:8443", "OV306", "browsers reach it on {https}"),
    ("advertise-address", "kamailio/kamailio.cfg", "advertise {advertised}:", "advertise 198.51.100.99:", "OV306", "Asterisk advertises"),
    ("no-advertise", "kamailio/kamailio.cfg", " advertise {advertised}:{https}", "", "OV306", "no advertise"),
    ("identify-elsewhere", "asterisk/pjsip.conf", "match={kamailio}", "match=10.99.0.11", "OV307", "no pjsip identify"),
    ("upstream-port", "nginx/nginx.conf", "server kamailio:{ws};", "server kamailio:5060;", "OV308", "listens on TCP"),
    ("no-upgrade", "nginx/nginx.conf", "proxy_pass http://kamailio;\n            proxy_http_version 1.1;\n            proxy_set_header Upgrade $http_upgrade;", "proxy_pass http://kamailio;", "OV308", "without proxy_http_version 1.1, proxy_set_header Upgrade"),
]


@pytest.mark.parametrize(("path", "old", "new", "rule_id", "words"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_each_defect_is_reported_by_its_rule(compiled: Compiled, path: str, old: str, new: str, rule_id: str, words: str) -> None:
    values = _plan_values(compiled)
    files = mutated(compiled, path, old.format(**values), new.format(**values))
    hits = [finding for finding in findings(files, compiled.plan.rtp.calls) if finding.rule_id == rule_id]
    assert hits, f"{rule_id} did not fire; got {[f.render() for f in findings(files, compiled.plan.rtp.calls)]}"
    assert any(words.format(**values) in finding.message for finding in hits), [finding.message for finding in hits]
    assert all(finding.severity == "error" for finding in hits)


def test_rtpengine_capacity_follows_the_calls(compiled: Compiled) -> None:
    webrtc = compiled.plan.webrtc
    assert webrtc is not None
    fits = webrtc.rtp.size // 4
    assert [f for f in findings(compiled.files, fits) if f.rule_id == "OV210"] == []
    too_many = [f for f in findings(compiled.files, fits + 1) if f.rule_id == "OV210" and "rtpengine" in f.message]
    assert len(too_many) == 1 and f"{fits + 1} calls need {4 * (fits + 1)}" in too_many[0].message


def test_the_reference_rtpengine_conf_fails_the_rtpengine_rules(compiled: Compiled) -> None:
    """DOMAIN.md s.1: table = 0, two listen-ng, placeholder interfaces, the unpublishable 30000-40000."""
    files = dict(compiled.files)
    files["rtpengine/rtpengine.conf"] = REFERENCE_RTPENGINE.read_text()
    fired = {finding.rule_id for finding in findings(files, compiled.plan.rtp.calls)}
    # OV213 (listen-ng twice), OV214 (table = 0), OV302 (placeholder interfaces), OV303 (30000-40000 not published).
    assert {"OV213", "OV214", "OV302", "OV303"} <= fired


def test_findings_point_at_the_offending_line(compiled: Compiled) -> None:
    files = mutated(compiled, "rtpengine/rtpengine.conf", "table = -1", "table = 0")
    [hit] = [finding for finding in findings(files) if finding.rule_id == "OV214"]
    line = files["rtpengine/rtpengine.conf"].splitlines()[hit.line - 1]
    assert (hit.file, line) == ("rtpengine/rtpengine.conf", "table = 0")
