#!/usr/bin/env bash
# zsh and fish, so the generated completion scripts are parsed by the real shells.
# Idempotent and quiet; without root (or apt) it says what is missing and leaves it to the tests to skip.
set -euo pipefail
missing=()
command -v zsh >/dev/null || missing+=(zsh)
command -v fish >/dev/null || missing+=(fish)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-shells: need root and apt-get to install ${missing[*]}; their completion tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null; }
# A fresh machine has no package lists yet: update only when the install needs it.
apt_install 2>/dev/null || { apt-get update -qq >/dev/null && apt_install; }
