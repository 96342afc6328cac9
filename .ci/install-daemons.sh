#!/usr/bin/env bash
# The real daemons that judge the generated WebRTC edge (tests/test_edge_daemons.py):
# Kamailio 5.6 with its websocket and auth_ephemeral modules, rtpengine, nginx, openssl;
# redis-server and redis-tools judge the Redis start command (tests/test_redis_real.py).
# Idempotent and quiet; services are never started (policy-rc.d answers 101 while installing).
# Without root (or apt) it says what is missing and leaves it to the tests to skip.
set -euo pipefail
packages=(kamailio kamailio-websocket-modules kamailio-autheph-modules rtpengine-daemon nginx openssl redis-server redis-tools)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-daemons: need root and apt-get to install ${missing[*]}; the edge daemon tests will skip" >&2
  exit 0
fi

policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=yes
fi
trap '[ "$created_policy" = yes ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null; }
# A fresh machine has no package lists yet: update only when the install needs it.
apt_install 2>/dev/null || { apt-get update -qq >/dev/null && apt_install; }
