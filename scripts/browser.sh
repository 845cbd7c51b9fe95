#!/usr/bin/env bash
# Installs Debian's chromium for the HTML report's browser tests (tests/unit/test_html_browser.py
# drives /usr/bin/chromium with Playwright; Playwright's own browser downloads are never used).
# Nothing to do when it is there already, so a user without root who has it needs no sudo.
set -euo pipefail
[[ -x /usr/bin/chromium ]] && exit 0

log() { printf '[browser] %s\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
log "installing chromium (Debian's package) for the HTML report's browser tests"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
