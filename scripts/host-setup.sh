#!/usr/bin/env bash
# Makes this host ready for svclab: a Docker engine that answers and can run privileged
# containers (kind nodes), and inotify limits high enough for a multi-node cluster.
#
# It changes the machine only where something is missing, and only when it may: as root, or as a
# user with passwordless sudo (`sudo -n true`). It never asks for a password: sudo is only ever
# run as `sudo -n`. Whatever is missing and may not be changed by this run is reported, each with
# the exact command that fixes it, and the script then exits 3.
#
#   inotify (Linux)   fs.inotify.max_user_watches >= 524288 and max_user_instances >= 512, the
#                     values kind recommends for multi-node clusters. Lower limits are raised
#                     (until the next boot), or, where this run may not, reported with the
#                     `sysctl -w` command and the /etc/sysctl.d/ line that keeps them: a missing
#                     prerequisite (exit 3), not a warning. There is one threshold only: at the
#                     common default of 128 instances a 3-node cluster (svclab's default) fails
#                     late and obscurely ("too many open files" from kubelet or kube-proxy), while
#                     the fix is one command.
#   Docker            `docker info` must answer. Debian's docker.io is installed only when no Docker
#                     is installed at all: no dockerd (docker.io, docker-ce), no Docker Desktop,
#                     colima, OrbStack or rootless Docker, no /var/run/docker.sock, no DOCKER_HOST,
#                     no Docker context but the default, and no docker CLI that a package installed
#                     (a lone docker binary no package owns, with no engine behind it, does not
#                     count). An installed dockerd that does not answer is started (as root or with
#                     passwordless sudo); any other Docker that does not answer is reported with
#                     the command that starts it.
#   CAP_SYS_RESOURCE  where the capability bounding set lacks it (some sandboxed VMs),
#                     `docker run --privileged` fails: a runc wrapper that drops it from container
#                     specs is registered as Docker's default runtime, and dockerd restarted.
#   macOS             only `docker info` is checked (the rest is Linux-only).
#
# Exit codes: 0 ready; 3 something is missing that this run may not (or cannot) fix, see the
# message; 1 a change did not take (e.g. dockerd did not answer after it was started).
#
# SVCLAB_HOSTSETUP_ROOT (for tests; empty by default) is prefixed to every system path the script
# reads or writes: /proc/self/status, /etc/docker/daemon.json, /usr/sbin/dockerd, /run/systemd, ...
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${SVCLAB_HOSTSETUP_ROOT:-}
wrapper_src=$here/host/runc-without-sys-resource
wrapper=$root/usr/local/libexec/svclab/runc-without-sys-resource
runtime_name=svclab-runc
daemon_json=$root/etc/docker/daemon.json
dockerd_log=$root/var/log/svclab-dockerd.log
proc_status=$root/proc/self/status
home=${HOME:-}
inotify_limits=(fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512)
sysctl_file=/etc/sysctl.d/99-svclab.conf   # only ever named in a suggested command

log() { printf '[host-setup] %s\n' "$*" >&2; }
die() { printf '[host-setup] error: %s\n' "$*" >&2; exit 1; }

os=$(uname -s)
uid=$(id -u)
is_root() { [[ $uid == 0 ]]; }
sudo_=sudo; is_root && sudo_=""   # prefix of the commands suggested to the user
run_root() { printf '%s' "${sudo_:+$sudo_ }$*"; }

# May this run change the machine? Asked once, and only when something needs changing.
may=""
may_change() {
  if [[ -z $may ]]; then
    may=no
    if is_root || { command -v sudo >/dev/null && sudo -n true >/dev/null 2>&1; }; then may=yes; fi
  fi
  [[ $may == yes ]]
}
as_root() { if is_root; then "$@"; else sudo -n "$@"; fi; }
why_not() {   # why a change was not made: "failed" when it was tried
  if [[ ${1:-} == failed ]]; then printf 'setting it failed here: a read-only /proc/sys, as in a container? Then set it on the host'
  else printf 'this run changes the machine only as root or with passwordless sudo'; fi
}

# What is missing and was not changed: one entry each, its first line what, the others how.
missing=()
report() { local IFS=$'\n'; missing+=("$*"); }

# --------------------------------------------------------------------------------- inotify

check_inotify_limits() {
  local pair key want have low=() commands=() failed=false
  for pair in "${inotify_limits[@]}"; do
    key=${pair%=*}; want=${pair#*=}
    have=$(sysctl -n "$key" 2>/dev/null) || { log "cannot read $key: not checked"; continue; }
    (( have < want )) || continue
    if may_change; then
      if as_root sysctl -q -w "$key=$want"; then log "raised $key from $have to $want"; continue; fi
      failed=true
    fi
    low+=("$key is $have")
    commands+=("    $(run_root sysctl -w "$key=$want")")
  done
  (( ${#low[@]} )) || return 0
  local found reason
  found=$(printf '%s, ' "${low[@]}")
  if $failed; then reason=$(why_not failed); else reason=$(why_not); fi
  report "inotify limits too low for a multi-node kind cluster (${found%, }). Raise them with:" \
         "${commands[@]}" \
         "  and keep them after a reboot with:" \
         "    printf '%s\\n' ${inotify_limits[*]} | $(run_root tee "$sysctl_file")" \
         "  ($reason)"
}

# --------------------------------------------------------------------------------- Docker

docker_err=""
docker_answers() {
  command -v docker >/dev/null || { docker_err="no docker command"; return 1; }
  local out
  out=$(docker info 2>&1 >/dev/null) && return 0
  docker_err=$(grep -m1 -iE 'cannot connect|permission denied|error' <<<"$out" || head -n1 <<<"$out")
  docker_err=${docker_err#ERROR: }
  return 1
}

# CAP_SYS_RESOURCE is capability 24. Some sandboxed VMs drop it from the bounding set, and then
# `docker run --privileged` (which asks for every capability) fails in runc.
bounding_lacks_sys_resource() {
  local bnd
  [[ -r $proc_status ]] || return 1
  bnd=$(awk '/^CapBnd:/ {print $2}' "$proc_status")
  [[ -n $bnd ]] || return 1
  (( (16#$bnd >> 24 & 1) == 0 ))
}

privileged_works() {
  # Any local image that has a `true` or a shell will do: the container only has to be created and
  # started. Images made of one program (a slimmed HAProxy) have neither, so a few are tried.
  local image tried=0
  while IFS= read -r image; do
    tried=$((tried + 1))
    docker run --rm --privileged --entrypoint /bin/true "$image" >/dev/null 2>&1 && return 0
    docker run --rm --privileged --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1 && return 0
    ((tried < 5)) || break
  done < <(docker images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>')
  ((tried == 0))   # nothing to try with yet: the wrapper decision relies on CapBnd
}

installed_dockerd() {   # an installed dockerd (Debian's docker.io, docker-ce, ...), if any
  local candidate
  for candidate in "$root/usr/sbin/dockerd" "$root/usr/bin/dockerd" "$(command -v dockerd || true)"; do
    [[ -n $candidate && -x $candidate ]] && { printf '%s\n' "$candidate"; return 0; }
  done
  return 1
}

docker_context() {   # the Docker context in use when it is not the default one
  local ctx=${DOCKER_CONTEXT:-} config=${DOCKER_CONFIG:-$home/.docker}/config.json
  if [[ -z $ctx && -f $config ]]; then
    ctx=$(sed -n 's/.*"currentContext"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$config" | head -n1)
  fi
  [[ -n $ctx && $ctx != default ]] || return 0
  printf '%s\n' "$ctx"
}

systemd_runs() { [[ -d $root/run/systemd/system ]]; }

# When some Docker is installed but does not answer: report how to start it and succeed. Fails
# when the only Docker here is a system dockerd (which this run may start) or there is none.
explain_docker_down() {
  local ctx cli runtime_dir=${XDG_RUNTIME_DIR:-/run/user/$uid}
  ctx=$(docker_context)
  if [[ -n ${DOCKER_HOST:-} ]]; then
    report "Docker at DOCKER_HOST=$DOCKER_HOST does not answer ($docker_err). Start the engine it names, or use this machine's:" \
           "    unset DOCKER_HOST"
  elif [[ -n $ctx ]]; then
    local start
    case $ctx in
      colima*) start="colima start" ;;
      orbstack) start="open -a OrbStack" ;;
      desktop-linux) start="systemctl --user start docker-desktop" ;;
      rootless) start="systemctl --user start docker" ;;
      *) start="" ;;
    esac
    report "the Docker context '$ctx' does not answer ($docker_err). ${start:+Start it with:}" \
           ${start:+"    $start"} \
           "  or use the default context: docker context use default"
  elif [[ $docker_err == *"ermission denied"* ]]; then
    report "Docker runs, but this user may not use its socket ($docker_err). Join the docker group, then log in again (or run \`newgrp docker\`):" \
           "    sudo usermod -aG docker \$USER"
  elif [[ $os == Darwin ]]; then
    if [[ -d $root/Applications/Docker.app || -d $home/Applications/Docker.app ]]; then
      report "Docker Desktop is installed but does not answer. Start it, and wait until it says it is running:" \
             "    open -a Docker"
    elif command -v colima >/dev/null || [[ -d $home/.colima ]]; then
      report "colima is installed but does not answer. Start it with:" "    colima start"
    elif [[ -d $root/Applications/OrbStack.app ]] || command -v orb >/dev/null; then
      report "OrbStack is installed but does not answer. Start it with:" "    open -a OrbStack"
    elif command -v docker >/dev/null; then
      report "the docker command ($(command -v docker)) finds no engine ($docker_err). Start the engine it belongs to (Docker Desktop: \`open -a Docker\`; colima: \`colima start\`)."
    else
      report "no Docker is installed. Install Docker Desktop (https://docs.docker.com/desktop/setup/install/mac-install/) and open it, or colima:" \
             "    brew install colima docker && colima start"
    fi
  elif [[ -d $home/.docker/desktop ]]; then
    report "Docker Desktop is installed but does not answer. Start it with:" \
           "    systemctl --user start docker-desktop"
  elif [[ -S $runtime_dir/docker.sock || -f $home/.config/systemd/user/docker.service ]]; then
    report "rootless Docker is installed but does not answer. Start it, and point docker at it:" \
           "    systemctl --user start docker" \
           "    export DOCKER_HOST=unix://$runtime_dir/docker.sock"
  elif installed_dockerd >/dev/null; then
    return 1
  elif [[ -S $root/var/run/docker.sock || -S $root/run/docker.sock ]]; then
    report "/var/run/docker.sock exists but nothing answers on it ($docker_err), and no dockerd is installed here. Start the engine that serves it, or point DOCKER_HOST at one that runs."
  elif cli=$(packaged_docker_cli); then
    report "the docker command $cli finds no engine ($docker_err), and no dockerd is installed here. Start the engine it belongs to, or point DOCKER_HOST at one that runs."
  else
    return 1   # no Docker at all, or only a docker binary that no package installed, with no engine behind it
  fi
}

# A docker CLI installed by a package (docker-ce-cli, ...), or any docker CLI where there is no
# dpkg to ask. A docker binary that no package owns (a static download in /usr/local/bin) does not
# count as a Docker: with no dockerd, socket, DOCKER_HOST or context it has no engine to talk to.
packaged_docker_cli() {
  local cli real owner
  cli=$(command -v docker) || return 1
  if ! command -v dpkg-query >/dev/null; then printf '%s\n' "$cli"; return 0; fi
  real=$(readlink -f "$cli")
  owner=$(dpkg-query -S "$cli" 2>/dev/null ||
          { [[ $real != "$cli" ]] && dpkg-query -S "$real" 2>/dev/null; }) || return 1
  printf '%s (package %s)\n' "$cli" "${owner%%:*}"
}

start_command() {
  if systemd_runs; then run_root systemctl start docker; else run_root service docker start; fi
}

install_docker_engine() {
  log "installing Debian's docker.io"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io jq >/dev/null
}

have_jq() {   # jq edits daemon.json for the runtime wrapper
  command -v jq >/dev/null && return 0
  if command -v apt-get >/dev/null && may_change; then
    log "installing jq"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
    return 0
  fi
  report "jq is missing (needed to register the runtime wrapper in $daemon_json). Install it:" \
         "    $(run_root apt-get install jq)"
  return 1
}

install_runtime_wrapper() {
  as_root install -D -m 0755 "$wrapper_src" "$wrapper"
  local current='{}'
  [[ -s $daemon_json ]] && current=$(as_root cat "$daemon_json")
  local wanted
  wanted=$(jq --arg name "$runtime_name" --arg path "$wrapper" \
    '.runtimes[$name] = {path: $path} | ."default-runtime" = $name' <<<"$current")
  if [[ $(jq -S . <<<"$current") != $(jq -S . <<<"$wanted") ]]; then
    as_root install -d "$(dirname "$daemon_json")"
    printf '%s\n' "$wanted" | as_root tee "$daemon_json" >/dev/null
    log "registered $runtime_name (drops CAP_SYS_RESOURCE, which this host cannot grant) as Docker's default runtime"
    return 0
  fi
  return 1
}

start_dockerd() {   # dockerd binary
  if systemd_runs; then
    log "restarting docker (systemd)"
    as_root systemctl restart docker
    return
  fi
  if pgrep -x dockerd >/dev/null; then
    log "restarting dockerd to load $daemon_json"
    as_root pkill -x dockerd
    for _ in $(seq 1 100); do pgrep -x dockerd >/dev/null || break; sleep 0.2; done
  fi
  log "starting dockerd (log: $dockerd_log)"
  as_root bash -c "nohup '$1' >>'$dockerd_log' 2>&1 &"
}

wait_for_docker() {
  for _ in $(seq 1 150); do docker_answers && return 0; sleep 0.2; done
  if systemd_runs; then die "dockerd did not answer within 30s; see \`journalctl -u docker\`"; fi
  die "dockerd did not answer within 30s; see $dockerd_log"
}

wrapper_report() {
  report "this host's capability bounding set lacks CAP_SYS_RESOURCE, so \`docker run --privileged\` (kind nodes) fails. Run this script once as root; it registers a runtime that drops that capability and restarts dockerd:" \
         "    $(run_root bash "$here/host-setup.sh")"
}

setup_docker_linux() {
  local need_wrapper=false dockerd
  bounding_lacks_sys_resource && need_wrapper=true

  if docker_answers; then
    $need_wrapper || return 0
    privileged_works && return 0
    if ! may_change || ! dockerd=$(installed_dockerd); then wrapper_report; return 0; fi
    have_jq || return 0
    if install_runtime_wrapper; then start_dockerd "$dockerd"; wait_for_docker; fi
    return 0
  fi

  explain_docker_down && return 0
  if dockerd=$(installed_dockerd); then
    if ! may_change; then
      report "Docker is installed ($dockerd) but does not answer ($docker_err). Start it with:" \
             "    $(start_command)"
      return 0
    fi
  elif ! command -v apt-get >/dev/null; then
    report "no Docker is installed. Install Docker Engine (https://docs.docker.com/engine/install/), start it, and run this again."
    return 0
  elif ! may_change; then
    report "no Docker is installed. Install Debian's docker.io (or Docker Engine: https://docs.docker.com/engine/install/):" \
           "    $(run_root apt-get install docker.io)" \
           "  ($(why_not))"
    return 0
  else
    if command -v docker >/dev/null; then
      log "$(command -v docker) belongs to no package and has no Docker engine to talk to"
    fi
    install_docker_engine
    dockerd=$(installed_dockerd) || die "docker.io was installed, but no dockerd was found"
  fi
  if $need_wrapper; then
    have_jq || return 0
    install_runtime_wrapper || true
  fi
  start_dockerd "$dockerd"
  wait_for_docker
}

main() {
  if [[ $os == Darwin ]]; then
    docker_answers || explain_docker_down
  else
    check_inotify_limits
    setup_docker_linux
  fi
  if (( ${#missing[@]} )); then
    local entry
    log "this machine is not ready for svclab:"
    for entry in "${missing[@]}"; do
      printf '%s\n' "$entry" | sed -e '1s/^/- /' -e 's/^/[host-setup] /' >&2
    done
    log "then run this again."
    exit 3
  fi
  log "docker $(docker version --format '{{.Server.Version}}') answers; cgroup $(docker info --format '{{.CgroupVersion}}')"
}

main "$@"
