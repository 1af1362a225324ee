#!/usr/bin/env bash
# `npm test`: the whole suite on real parts - Postgres, ansible-playbook, and a fleet of
# network-namespace hosts with their own sshd. Installs what a clean clone lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_tools 1
ensure_node_modules

: "${TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
export TEST_DATABASE_URL

pg_up() { node scripts/pg-ping.mjs "$TEST_DATABASE_URL" >/dev/null 2>&1; }

if [ -z "${ROUTEPLANE_TEST_BACKEND:-}" ] && ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    log "Postgres is down; starting the local cluster"
    for v in $(ls /etc/postgresql); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
  fi
fi

if [ -z "${ROUTEPLANE_TEST_BACKEND:-}" ]; then
  if pg_up; then
    export ROUTEPLANE_TEST_BACKEND=postgres
  elif [ "${CI:-}" = "true" ]; then
    log "FAIL: Postgres at $TEST_DATABASE_URL is unreachable, and CI must test on real Postgres"
    exit 1
  else
    log "Postgres at $TEST_DATABASE_URL is unreachable: database tests fall back to embedded PGlite"
    export ROUTEPLANE_TEST_BACKEND=pglite
  fi
fi
log "database backend for tests: $ROUTEPLANE_TEST_BACKEND"

log "checking generated API types match openapi.yaml"
node_modules/.bin/tsx scripts/check-api-types.ts
log "typecheck"
node_modules/.bin/tsc -p tsconfig.json --noEmit
log "lint"
node_modules/.bin/eslint .
node_modules/.bin/prettier --check . --log-level warn
log "vitest"
node_modules/.bin/vitest run "$@"
