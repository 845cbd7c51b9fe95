#!/usr/bin/env bash
# Sets this machine up (see env.sh) and runs svclab: `scripts/run.sh lab.all` by default.
source "$(dirname "$0")/env.sh"
(( $# )) || set -- lab.all
exec svclab "$@"
