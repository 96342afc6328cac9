"""The profile the end-to-end tier deploys."""

# About 10 calls on loopback: published ports stay on 127.0.0.1, high host
# ports avoid clashing with anything the machine runs, and two replicas of each
# worker exercise deploy.replicas without many vfs container copies.
E2E_PROFILE = """\
schema_version = 2

# The stand-in images are loaded under the images.* names: nothing is built from a checkout.
[build]
prebuilt = true

[project]
name = "omnigen-e2e"

[host]
kind = "bare-metal"

[network]
subnet = "10.231.77.0/24"
bind_ip = "127.0.0.1"

[capacity]
concurrent_calls = 10

[rtp]
start = 31000

[ports]
sip = 15060
http = 18080
https = 18443

[workers]
celery = 2
dialer = 2
"""
