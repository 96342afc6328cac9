#!/usr/bin/env bash
# mmdebstrap builds the Debian bookworm root filesystems of the real-application e2e images
# (tests/e2e/realapp/rootfs.py) from the Debian archive. Idempotent and quiet.
set -euo pipefail
exec bash "$(dirname "$0")/apt-packages.sh" install-mmdebstrap mmdebstrap
