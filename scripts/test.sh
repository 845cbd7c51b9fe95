#!/usr/bin/env bash
# Sets this machine up (see env.sh) and runs every test: unit tests, then the end-to-end tests on
# real kind clusters. Extra arguments go to pytest.
source "$(dirname "$0")/env.sh"
cd "$repo"
bash "$repo/scripts/browser.sh"   # the HTML report's browser tests use Debian's chromium
exec pytest tests "$@"
