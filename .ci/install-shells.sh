#!/usr/bin/env bash
# zsh and fish, so the generated completion scripts are parsed by the real shells.
set -euo pipefail
missing=()
command -v zsh >/dev/null || missing+=(zsh)
command -v fish >/dev/null || missing+=(fish)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
