#!/usr/bin/env bash
# Shared set-up steps for scripts/up.sh and scripts/test.sh: install only what is
# missing, so a warm machine pays nothing and a fresh Debian box needs no manual steps.

log() { printf '[routeplane] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { log "apt-get not available; install manually: $*"; return 1; }
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_tools <need-lab>: ansible is always needed; sshd/nft/ip (the test fleet) and
# docker-compose (static checks) only for tests.
ensure_tools() {
  local missing=()
  command -v ansible-playbook >/dev/null 2>&1 || missing+=(ansible)
  if [ "${1:-0}" = 1 ]; then
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
    command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
    # Validates docker-compose.yml in the static tests; needs no Docker engine.
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  fi
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}
