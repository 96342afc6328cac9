"""The multi-host profile the end-to-end tier deploys on a single-node Docker Swarm."""

# Four hosts on one node: the node gets every role and every host label. The two voice
# hosts share the node, so (as two hosts behind one NAT address would) each has its own
# SIP port and RTP range; high ports avoid clashing with anything the machine runs, and
# 3 calls per voice host keep the host-mode port list short (18 RTP ports each).
SWARM_PROFILE = """\
schema_version = 2

# The stand-in images are loaded under the images.* names: nothing is built from a checkout.
[build]
prebuilt = true

[project]
name = "omnigen-swarm"

[host]
kind = "bare-metal"

[network]
subnet = "10.231.88.0/24"

[capacity]
concurrent_calls = 6

[rtp]
start = 32000

[ports]
sip = 25060
http = 28080
https = 28443

[workers]
celery = 2
dialer = 1

[[hosts]]
name = "data1"
address = "10.231.1.11"
roles = ["data"]

[[hosts]]
name = "app1"
address = "10.231.1.12"
roles = ["web", "edge"]

[[hosts]]
name = "voice1"
address = "10.231.1.21"
roles = ["voice"]
calls = 3

[[hosts]]
name = "voice2"
address = "10.231.1.22"
roles = ["voice"]
calls = 3
sip_port = 25062
rtp_start = 32100
"""
