#!/usr/bin/env bash
# Sets this machine up (see env.sh) and runs every test: unit tests and the end-to-end tests on
# real kind clusters, shared out among SVCLAB_TEST_WORKERS pytest workers (default 3; 0 runs them
# one after another; on 2 cores three took 41.5 min where one took 57). Tests that restart Docker
# run last, alone. Extra arguments go to pytest.
source "$(dirname "$0")/env.sh"
cd "$repo"
bash "$repo/scripts/browser.sh"   # the HTML report's browser tests use Debian's chromium
workers=${SVCLAB_TEST_WORKERS:-3}
if [[ $workers == 0 ]]; then
  exec pytest tests "$@"
fi
started=$SECONDS
pytest tests -n "$workers" --dist loadgroup --no-loadscope-reorder "$@"
status=$?
echo "[test] $workers workers: pytest exited $status after $((SECONDS - started))s"
if [[ ${SVCLAB_E2E_RESTART_DOCKER:-0} == 1 ]]; then
  # Alone: a Docker restart would stop the other workers' clusters.
  pytest tests/e2e -m docker_restart "$@"
  restart=$?
  (( restart == 5 )) && { echo "[test] no test restarts Docker" >&2; restart=1; }
  (( status == 0 )) && status=$restart
fi
exit "$status"
