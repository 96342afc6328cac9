#!/usr/bin/env bash
# Installs what the end-to-end tier and bench-deploy need: Debian's Docker engine
# (dockerd, containerd, runc, docker-proxy, iptables), a static busybox for the
# stand-in images, a C compiler with static libc for their port listener, and Debian's
# PostgreSQL 15, copied into the migration test's database image (tests/e2e/realpostgres.py).
# Idempotent and quiet: does nothing when everything is already there.
set -euo pipefail

packages=(docker.io busybox-static gcc libc6-dev iptables postgresql-15)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-docker: need root to apt-get install ${missing[*]}; the e2e tier will be skipped" >&2
    exit 0
fi
echo "install-docker: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101: packages must not start a system dockerd/containerd; the tests start their own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq "${missing[@]}" >/dev/null
