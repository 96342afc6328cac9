#!/usr/bin/env bash
# The real daemons that judge the generated WebRTC edge (tests/test_edge_daemons.py):
# Kamailio 5.6 with its websocket and auth_ephemeral modules, rtpengine, nginx, openssl;
# redis-server and redis-tools judge the Redis start command (tests/test_redis_real.py).
set -euo pipefail
exec bash "$(dirname "$0")/apt-packages.sh" install-daemons \
  kamailio kamailio-websocket-modules kamailio-autheph-modules rtpengine-daemon nginx openssl redis-server redis-tools
