#!/usr/bin/env bash
# Real tools that judge the certificate and firewall outputs (tests/test_acme.py, tests/plan/test_firewall.py):
# pebble (Let's Encrypt's ACME test server), lego (the ACME client the acme service runs),
# nftables (nft -c and the namespace test) and iproute2 (ip netns). nginx comes from install-daemons.sh.
set -euo pipefail
exec bash "$(dirname "$0")/apt-packages.sh" install-tls-firewall pebble lego nftables iproute2
