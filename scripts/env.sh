# Sourced by run.sh and test.sh: everything a fresh machine needs before svclab runs.
#   - Docker engine and kernel limits (host-setup.sh; exit 3 and what to do when it may not fix them)
#   - the Python environment in .venv, with svclab installed in it
#   - unless SVCLAB_USE_TESTBED=0: the test bed (every image built locally, for hosts that cannot
#     pull from container registries), handed to svclab through its ordinary settings
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$repo/.venv

phase_start=$SECONDS
phase_done() {  # how long each set-up phase took, on stderr (CI's log shows where the time goes)
  printf '[env] %s: %ss\n' "$1" "$((SECONDS - phase_start))" >&2
  phase_start=$SECONDS
}

# host-setup.sh exits 3 when this machine lacks something it may not change itself; it has then
# printed what is missing and the commands that fix it. Stop with its exit code.
bash "$repo/scripts/host-setup.sh" || {
  rc=$?
  printf '[env] %s stopped: this machine is not ready for svclab (see above)\n' "${0##*/}" >&2
  exit "$rc"
}

python=${PYTHON:-python3}
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv"
fi
stamp=$venv/.svclab-installed
if [[ ! -f $stamp || $repo/pyproject.toml -nt $stamp ]]; then
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -e "$repo[test]"
  touch "$stamp"
fi
export PATH=$venv/bin:$PATH
phase_done "host set-up and Python environment"

if [[ ${SVCLAB_USE_TESTBED:-1} != 0 ]]; then
  bash "$repo/scripts/testbed/prereqs.sh" "$venv"
  testbed=$("$venv/bin/python" "$repo/scripts/testbed/builder.py" build)
  export SVCLAB_NODE_IMAGE=${SVCLAB_NODE_IMAGE:-$(jq -r .node_image <<<"$testbed")}
  export SVCLAB_MIRROR=${SVCLAB_MIRROR:-$(jq -r .mirror <<<"$testbed")}
  phase_done "test bed"
fi
