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

has_posix_json_callback() {
  # Debian's `ansible` ships the ansible.posix collection (its json callback); ansible-core alone does not.
  ansible-galaxy collection list ansible.posix 2>/dev/null | grep -q '^ansible\.posix '
}

# ensure_tools <for-tests>: ansible with ansible.posix, sshd, nftables and iproute2 always
# (the controller gathers and applies with them, and the lab is built from them);
# docker-compose (the static checks of docker-compose.yml, no engine needed) and chromium (the
# dashboard's browser tests, driven by playwright-core) for tests only.
ensure_tools() {
  local missing=()
  if ! command -v ansible-playbook >/dev/null 2>&1 || ! has_posix_json_callback; then
    missing+=(ansible)
  fi
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
  if [ "${1:-0}" = 1 ]; then
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
  fi
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}
