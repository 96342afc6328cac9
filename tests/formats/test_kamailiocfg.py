"""formats/kamailiocfg.py: the settings the edge rules read back, with their lines."""

from __future__ import annotations

from omnigen.formats.kamailiocfg import parse_dispatcher_list, parse_kamailio_cfg

CFG = """#!KAMAILIO
#!define SOCK "udp:10.0.0.12:2223"
/* listen=udp:9.9.9.9:1 inside a block comment
   is not a listen */
listen=udp:10.0.0.11:5060
listen=tcp:10.0.0.11:5066 advertise 203.0.113.1:443  # browsers
# listen=udp:8.8.8.8:5060
alias="example.com"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", SOCK)
modparam("tm", "fr_timer", 30000)
"""


def test_listens_with_advertise_and_lines() -> None:
    cfg = parse_kamailio_cfg(CFG)
    assert [(item.proto, item.address, item.port, item.advertise_address, item.advertise_port, item.line) for item in cfg.listens] == [
        ("udp", "10.0.0.11", 5060, None, None, 5),
        ("tcp", "10.0.0.11", 5066, "203.0.113.1", 443, 6),
    ]
    assert cfg.aliases == (("example.com", 8),)


def test_modparam_values_resolve_defines() -> None:
    cfg = parse_kamailio_cfg(CFG)
    sock = cfg.modparam("rtpengine", "rtpengine_sock")
    assert sock is not None and (sock.value, sock.line) == ("udp:10.0.0.12:2223", 10)
    timer = cfg.modparam("tm", "fr_timer")
    assert timer is not None and timer.value == "30000"
    assert cfg.has_module("rtpengine") and not cfg.has_module("websocket")
    assert cfg.modparam("tm", "missing") is None


def test_dispatcher_list_destinations() -> None:
    text = "# setid uri\n1 sip:10.0.0.10:5060 0 0 name=asterisk\n\n2 sip:10.0.0.20 # second\nnot a line\n"
    assert [(d.set_id, d.uri, d.line) for d in parse_dispatcher_list(text)] == [(1, "sip:10.0.0.10:5060", 2), (2, "sip:10.0.0.20", 4)]
