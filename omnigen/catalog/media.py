"""Media ports per call: the arithmetic the port plan, the rtpengine config and the lint rules share.

Asterisk (res_rtp_asterisk.c) gives each RTP instance an even port and RTCP the next odd
one, so every media stream costs two ports. A contact-center call is bridged through
Asterisk (direct_media=no): caller channel + agent channel. rtpengine relays each WebRTC
call between two sides (the browser and Asterisk); each side takes an even RTP port and
the odd RTCP port after it (rtcp-mux toward the browser still reserves the pair).
"""

from __future__ import annotations

PORTS_PER_STREAM = 2  # RTP on an even port, RTCP on the odd one after it
CHANNELS_PER_CALL = 2  # a bridged call: the caller's channel and the agent's
RTPENGINE_SIDES_PER_CALL = 2  # the browser's side and Asterisk's

ASTERISK_PORTS_PER_CALL = CHANNELS_PER_CALL * PORTS_PER_STREAM
RTPENGINE_PORTS_PER_CALL = RTPENGINE_SIDES_PER_CALL * PORTS_PER_STREAM


def asterisk_ports_needed(calls: int) -> int:
    """Asterisk's RTP ports for `calls` bridged audio calls, before headroom."""
    return calls * ASTERISK_PORTS_PER_CALL


def rtpengine_ports_needed(calls: int) -> int:
    """rtpengine's media ports for `calls` relayed audio calls, before headroom."""
    return calls * RTPENGINE_PORTS_PER_CALL
