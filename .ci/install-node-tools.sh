#!/usr/bin/env bash
# Node tools the tests use as third-party judges (dclint, pinned in package.json and
# package-lock.json). Idempotent: `npm ci` runs only when the lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-node-tools: node and npm are required (Node >= 20.19) for the dclint judge" >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "install-node-tools: Node $(node --version) is too old; dclint needs >= 20.19" >&2
  exit 1
fi
stamp=node_modules/.omnigen-lock.sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/dclint ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
echo "$wanted" > "$stamp"
node_modules/.bin/dclint --version >/dev/null
