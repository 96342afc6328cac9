"""capacity.py: ports per call per component, range placement, the port layout, bandwidth."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from omnigen.errors import EXIT_BAD_INPUT, ProfileError
from omnigen.inputs.profile import Profile
from omnigen.loading import validate_profile
from omnigen.plan.capacity import (
    MAX_PORT,
    MIN_PORT,
    CapacityError,
    MediaNeed,
    RangeRequest,
    asterisk_need,
    codecs,
    place_ranges,
    port_plan,
    rtpengine_need,
    with_headroom,
)

NEEDS = [
    # calls, headroom, supervised %, video -> channels, ports needed, range size
    pytest.param(1, 0, 0, False, 2, 4, 4, id="one-call-bare"),
    pytest.param(50, 20, 0, False, 100, 200, 240, id="seed-50-calls-is-240-not-100"),
    pytest.param(50, 20, 10, False, 105, 210, 252, id="supervised-10pct"),
    pytest.param(50, 20, 10, True, 105, 420, 504, id="video-doubles"),
    pytest.param(7, 0, 50, False, 18, 36, 36, id="supervised-rounds-up"),
    pytest.param(3, 10, 0, False, 6, 12, 14, id="headroom-rounds-up-to-even"),
    pytest.param(500, 20, 10, False, 1050, 2100, 2520, id="call-center-500"),
]


@pytest.mark.parametrize(("calls", "headroom", "supervised", "video", "channels", "needed", "size"), NEEDS)
def test_asterisk_ports_per_call(calls: int, headroom: int, supervised: int, video: bool, channels: int, needed: int, size: int) -> None:
    need = asterisk_need(calls, headroom, supervised, video)
    assert (need.channels, need.ports_needed, need.size) == (channels, needed, size)
    placed = need.at(20000)
    assert placed.start % 2 == 0 and placed.end % 2 == 1
    assert placed.size == size and placed.arithmetic == need.arithmetic


def test_rtpengine_takes_four_ports_per_call() -> None:
    assert rtpengine_need(40, 0).ports_needed == 160
    assert rtpengine_need(40, 0, video=True).ports_needed == 320


@pytest.mark.parametrize("headroom", [0, 1, 17, 20, 50, 100])
@pytest.mark.parametrize("ports", [2, 4, 6, 98, 100, 2100])
def test_headroom_never_rounds_down_and_keeps_the_size_even(ports: int, headroom: int) -> None:
    size = with_headroom(ports, headroom)
    assert size % 2 == 0
    assert size >= ports * (100 + headroom) / 100
    assert size - ports * (100 + headroom) / 100 < 2


# --- place_ranges --------------------------------------------------------------------------------


def _request(component: str, calls: int, *starts: int) -> RangeRequest:
    return RangeRequest(MediaNeed(component, component, calls, 2 * calls, "test", 1, 0), "rtp.start", starts)


def test_second_range_goes_after_the_first_else_before_it() -> None:
    first, second = _request("asterisk", 10, 20000), _request("rtpengine", 10, 20040, 20000 - 40)
    placed = place_ranges([first, second], {})
    assert (placed["asterisk"].start, placed["asterisk"].end) == (20000, 20039)
    assert (placed["rtpengine"].start, placed["rtpengine"].end) == (20040, 20079)
    blocked = place_ranges([first, second], {20050: "ports.https"})
    assert (blocked["rtpengine"].start, blocked["rtpengine"].end) == (19960, 19999)


@pytest.mark.parametrize(
    ("starts", "reserved", "expected"),
    [
        ((65500,), {}, "ends at 65539, past 65535; lower rtp.start to at most 65496"),
        ((10000,), {10011: "ports.sip"}, "contains ports.sip = 10011; move rtp.start or the port"),
        ((10001,), {}, "must start on an even port (got 10001)"),
        ((1000,), {}, "starts below 1024"),
    ],
    ids=["past-65535", "covers-a-port", "odd-start", "below-1024"],
)
def test_a_range_that_cannot_be_placed_names_the_key_and_the_fix(starts: tuple[int, ...], reserved: dict[int, str], expected: str) -> None:
    with pytest.raises(CapacityError) as caught:
        place_ranges([_request("asterisk", 10, *starts)], reserved)
    assert caught.value.key == "rtp.start"
    assert expected in str(caught.value)


def test_more_ports_than_the_port_space_holds() -> None:
    with pytest.raises(CapacityError, match="more than the 64512 ports of 1024-65535"):
        place_ranges([_request("asterisk", 20000, 2000)], {})


requests = st.lists(
    st.tuples(st.integers(min_value=1, max_value=9000), st.lists(st.integers(min_value=MIN_PORT // 2, max_value=MAX_PORT // 2), min_size=1, max_size=3)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(requests, st.dictionaries(st.integers(min_value=1, max_value=MAX_PORT), st.sampled_from(["ports.sip", "ports.http", "ports.https"]), max_size=4))
def test_placed_ranges_never_overlap_and_always_fit_or_fail_with_capacity_error(
    drawn: list[tuple[int, list[int]]], reserved: dict[int, str]
) -> None:
    wanted = [_request(f"component{index}", calls, *(half * 2 for half in halves)) for index, (calls, halves) in enumerate(drawn)]
    try:
        placed = place_ranges(wanted, reserved)
    except CapacityError as error:
        assert error.key == "rtp.start" and error.message
        return
    assert list(placed) == [request.need.component for request in wanted]
    for request in wanted:
        got = placed[request.need.component]
        assert got.start in request.starts
        assert got.start >= MIN_PORT and got.end <= MAX_PORT
        assert got.start % 2 == 0 and got.end % 2 == 1 and got.size == request.need.size
        assert not any(got.start <= port <= got.end for port in reserved)
    for one, other in itertools.combinations(placed.values(), 2):
        assert one.end < other.start or other.end < one.start


# --- The port layout of whole profiles -----------------------------------------------------------


@st.composite
def profile_data(draw: st.DrawFn) -> dict[str, Any]:
    port = st.one_of(st.sampled_from([80, 443, 5060, 8080, 8443]), st.integers(min_value=1, max_value=MAX_PORT))
    ports = draw(st.one_of(st.lists(port, min_size=3, max_size=3, unique=True), st.lists(port, min_size=3, max_size=3)))
    return {
        "schema_version": 2,
        "project": {"name": "prop"},
        "host": {"kind": "bare-metal", "userland_proxy": False},
        "network": {"bind_ip": "192.168.1.10", "expose_internal": draw(st.booleans())},
        "capacity": {
            # Mostly capacities a bare-metal budget admits, sometimes any the schema allows.
            "concurrent_calls": draw(st.one_of(st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=10000))),
            "headroom_percent": draw(st.integers(min_value=0, max_value=100)),
            "supervised_percent": draw(st.integers(min_value=0, max_value=100)),
            "video": draw(st.booleans()),
        },
        "rtp": {"start": draw(st.integers(min_value=MIN_PORT // 2, max_value=(MAX_PORT - 1) // 2)) * 2},
        "ports": dict(zip(("sip", "http", "https"), ports, strict=True)),
        "components": {"webrtc": draw(st.booleans())},
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile_data())
def test_every_profile_lays_out_its_ports_without_overlap_or_fails_with_exit_2(data: dict[str, Any]) -> None:
    try:
        profile = validate_profile(data, file="p.toml", text="", env={})
    except ProfileError as error:
        assert error.exit_code == EXIT_BAD_INPUT
        event("refused with exit 2")
        return
    event("accepted")
    layout = port_plan(profile)
    spans = sorted((use.start, use.end, use.protocol, use.key) for use in layout.uses)
    for use in layout.uses:
        assert 1 <= use.start <= use.end <= MAX_PORT
    for component, placed in layout.ranges.items():
        assert placed.start >= MIN_PORT and placed.end <= MAX_PORT, component
        assert placed.start % 2 == 0 and placed.end % 2 == 1, component
    for (start, end, protocol, key), (other_start, other_end, other_protocol, other_key) in itertools.combinations(spans, 2):
        if (key, start) == (other_key, other_start):
            continue  # SIP over UDP and TCP share the number
        assert end < other_start or other_end < start or protocol != other_protocol, (key, other_key)
    ranges = sorted(layout.ranges.values(), key=lambda placed: placed.start)
    for one, other in itertools.pairwise(ranges):
        assert one.end < other.start


def _profile(**capacity: Any) -> Profile:
    data = {
        "schema_version": 2,
        "project": {"name": "acme"},
        "host": {"kind": "bare-metal", "userland_proxy": False},
        "network": {"bind_ip": "192.168.1.10"},
        "capacity": {"concurrent_calls": 100, **capacity},
        "components": {"webrtc": True},
    }
    return validate_profile(data, file="p.toml", text="", env={})


def test_webrtc_range_sits_right_after_asterisk_and_both_are_published() -> None:
    layout = port_plan(_profile())
    asterisk, relay = layout.ranges["asterisk"], layout.ranges["rtpengine"]
    assert relay.start == asterisk.end + 1
    assert relay.size == rtpengine_need(100, 20).size
    assert layout.published_media == frozenset({"asterisk", "rtpengine"})
    assert layout.published == asterisk.size + relay.size + 4


# --- Bandwidth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "kbps"), [("G.711", 87.2), ("G.729", 31.2)])
def test_codec_bandwidth_per_stream_includes_every_header(codec: str, kbps: float) -> None:
    by_name = {item.name: item for item in codecs()}
    assert by_name[codec].stream_kbps() == pytest.approx(kbps)


@pytest.mark.parametrize("payload", [16, 24, 32, 40])
def test_opus_bandwidth_is_its_payload_plus_the_same_overhead_as_g711(payload: float) -> None:
    by_name = {item.name: item for item in codecs(payload)}
    overhead = by_name["G.711"].stream_kbps() - 64
    assert by_name["Opus"].stream_kbps() == pytest.approx(payload + overhead)
    assert math.isclose(overhead, 23.2)


def test_a_single_port_on_an_internal_debug_port_is_refused() -> None:
    data = {
        "schema_version": 2,
        "project": {"name": "prop"},
        "network": {"bind_ip": "192.168.1.10", "expose_internal": True},
        "ports": {"https": 5432},
        "capacity": {"concurrent_calls": 10},
    }
    with pytest.raises(ProfileError) as caught:
        validate_profile(data, file="p.toml", text="", env={})
    assert "host port 5432 is used by both ports.https and network.expose_internal (PostgreSQL (debug))" in str(caught.value)
