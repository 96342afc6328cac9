#!/usr/bin/env bash
# Shared by the .ci/install-*.sh scripts: `apt-packages.sh WHO PACKAGE...` installs the Debian
# packages that are missing. Idempotent and quiet; services are never started (policy-rc.d
# answers 101 while installing). Without root (or apt) it says what is missing and exits 0,
# leaving it to the tests that need them to skip with a reason.
set -euo pipefail
who=$1
shift
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "$who: need root and apt-get to install ${missing[*]}; the tests that need them will skip" >&2
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
