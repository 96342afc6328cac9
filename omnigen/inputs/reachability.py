"""Whether phones and trunks can reach an address Asterisk advertises in SIP and SDP.

`external_media_address` is copied into every SDP answer: if phones cannot reach it,
calls connect and carry no audio, and nothing fails loudly. So an address that can
never be a destination from another machine is refused where the profile names it
(profile.py), and one that works only from some places is a warning that `build`
and `explain` print (caveats.plan_warnings). Stdlib only.

The Copier template mirrors the refusals (scaffold/validators.jinja); a property
test holds the two to the same verdicts.
"""

from __future__ import annotations

import ipaddress

THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # RFC 1122: "this host on this network", a source only
SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598: carrier-grade NAT
PUBLIC_IP_RULE = "public_ip must be a routable unicast address clients can reach"


def public_ip_refusal(ip: ipaddress.IPv4Address) -> str | None:
    """Why an address can never be what phones are told to send SIP and RTP to, or None."""
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast:
        return PUBLIC_IP_RULE
    if ip.is_link_local:
        return f"{PUBLIC_IP_RULE}; a link-local address (169.254.0.0/16) is never forwarded by routers"
    if ip.is_reserved:
        return f"{PUBLIC_IP_RULE}; 240.0.0.0/4 is reserved (and 255.255.255.255 is broadcast): no host has such an address"
    if ip in THIS_NETWORK:
        return f"{PUBLIC_IP_RULE}; 0.0.0.0/8 is valid only as a source address (RFC 1122)"
    return None


def bind_ip_refusal(ip: ipaddress.IPv4Address) -> str | None:
    """Why Docker could never publish ports on this address, or None (0.0.0.0 means every address)."""
    if ip.is_multicast:
        return "bind_ip cannot be a multicast address"
    if ip.is_reserved:
        return "bind_ip cannot be a reserved address (240.0.0.0/4, 255.255.255.255): no host interface has one"
    if ip in THIS_NETWORK and not ip.is_unspecified:
        return "bind_ip cannot be in 0.0.0.0/8 other than 0.0.0.0 itself (every address)"
    return None


def advertised_caveat(ip: ipaddress.IPv4Address) -> str | None:
    """Why phones elsewhere may not reach an advertised address that profile validation let through, or None.
    """
    if ip.is_loopback:
        return (
            f"{ip} is advertised in SIP and SDP (external_media_address), but it is a loopback address: only "
            "programs on this machine reach it, so phones would register nowhere and calls would have no audio; fine "
            "for a test on this host, otherwise set network.public_ip (behind NAT) or network.bind_ip to the host's "
            "LAN or public address"
        )
    if ip.is_link_local:
        return (
            f"{ip} is advertised in SIP and SDP, but it is link-local (169.254.0.0/16): routers never forward "
            "it, so only phones on the same network segment reach it; advertise a routable address"
        )
    if ip in SHARED_ADDRESS_SPACE:
        return (
            f"{ip} is advertised in SIP and SDP, but it is carrier-grade NAT space (100.64.0.0/10, RFC 6598): "
            "phones outside the provider's network cannot reach it; set network.public_ip to the public address the "
            "provider maps to this host"
        )
    return None
