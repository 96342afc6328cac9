"""RTP arithmetic: how many ports a number of calls needs, computed in one place.

Asterisk (res_rtp_asterisk.c) gives each RTP instance an even port in
[rtpstart, rtpend] and RTCP the next odd one, so every channel costs two
ports. A contact-center call is bridged through Asterisk (direct_media=no):
caller channel + agent channel. rtpend must be odd so the last RTCP port is
inside the range; if rtpstart >= rtpend Asterisk silently falls back to
5000-31000, which would no longer be the published range.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS_PER_CALL = 2
PORTS_PER_CHANNEL = 2
MAX_PORT = 65535


@dataclass(frozen=True)
class RtpRange:
    start: int
    end: int
    calls: int
    ports_needed: int
    headroom_percent: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def ports_per_call(self) -> int:
        return CHANNELS_PER_CALL * PORTS_PER_CHANNEL


def asterisk_ports_needed(calls: int) -> int:
    return calls * CHANNELS_PER_CALL * PORTS_PER_CHANNEL


def with_headroom(ports: int, headroom_percent: int) -> int:
    """Ports plus headroom, rounded up to an even count so the range ends odd."""
    total = -(-ports * (100 + headroom_percent) // 100)
    return total + (total % 2)


def asterisk_range(start: int, calls: int, headroom_percent: int) -> RtpRange:
    needed = asterisk_ports_needed(calls)
    size = with_headroom(needed, headroom_percent)
    return RtpRange(start=start, end=start + size - 1, calls=calls, ports_needed=needed, headroom_percent=headroom_percent)
