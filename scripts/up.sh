#!/usr/bin/env bash
# `npm run up`: install what is missing and start routeplane. Without DATABASE_URL it
# runs on embedded PGlite under DATA_DIR (default ./data).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools 0
ensure_node_modules
exec node --import tsx src/server.ts
