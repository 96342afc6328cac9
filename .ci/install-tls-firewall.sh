#!/usr/bin/env bash
# Real tools that judge the certificate and firewall outputs (tests/test_acme.py, tests/test_firewall.py):
# pebble (Let's Encrypt's ACME test server), lego (the ACME client the acme service runs),
# nftables (nft -c and the namespace test) and iproute2 (ip netns). nginx comes from install-daemons.sh.
# Idempotent and quiet; services are never started (policy-rc.d answers 101 while installing).
set -euo pipefail
packages=(pebble lego nftables iproute2)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=yes
fi
trap '[ "$created_policy" = yes ] && rm -f "$policy"' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null
