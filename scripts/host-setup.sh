#!/usr/bin/env bash
# Makes this host ready for svclab: a Docker engine that answers and can run privileged
# containers (kind nodes), and inotify limits high enough for a multi-node cluster.
#
# Idempotent. On a host whose Docker already works (a laptop, a GitHub runner) it changes nothing
# but the inotify limits. Needs root only for what it has to change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
wrapper_src=$here/host/runc-without-sys-resource
wrapper=/usr/local/libexec/svclab/runc-without-sys-resource
runtime_name=svclab-runc
daemon_json=/etc/docker/daemon.json
dockerd_log=/var/log/svclab-dockerd.log

log() { printf '[host-setup] %s\n' "$*" >&2; }
die() { printf '[host-setup] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# CAP_SYS_RESOURCE is capability 24. Some sandboxed VMs drop it from the bounding set, and then
# `docker run --privileged` (which asks for every capability) fails in runc.
bounding_lacks_sys_resource() {
  local bnd
  bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  (( (16#$bnd >> 24 & 1) == 0 ))
}

docker_answers() { docker info >/dev/null 2>&1; }

privileged_works() {
  # Any local image will do: the container only has to be created and started.
  local image
  image=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | head -n1)
  [[ -n $image ]] || return 0   # nothing to try with yet; the wrapper decision relies on CapBnd
  docker run --rm --privileged --entrypoint /bin/true "$image" >/dev/null 2>&1 ||
    docker run --rm --privileged --entrypoint true "$image" >/dev/null 2>&1
}

raise_inotify_limits() {
  local key want have
  for pair in fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512; do
    key=${pair%=*}; want=${pair#*=}
    have=$(sysctl -n "$key")
    if (( have < want )); then
      as_root sysctl -q -w "$key=$want" && log "raised $key from $have to $want"
    fi
  done
}

install_docker_engine() {
  command -v apt-get >/dev/null || die "no Docker engine answers and this is not a Debian-like host: install Docker, start it, and run this again"
  log "installing Debian's docker.io"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io jq >/dev/null
}

install_runtime_wrapper() {
  as_root install -D -m 0755 "$wrapper_src" "$wrapper"
  local current='{}'
  [[ -s $daemon_json ]] && current=$(as_root cat "$daemon_json")
  local wanted
  wanted=$(jq --arg name "$runtime_name" --arg path "$wrapper" \
    '.runtimes[$name] = {path: $path} | ."default-runtime" = $name' <<<"$current")
  if [[ $(jq -S . <<<"$current") != $(jq -S . <<<"$wanted") ]]; then
    as_root install -d /etc/docker
    printf '%s\n' "$wanted" | as_root tee "$daemon_json" >/dev/null
    log "registered $runtime_name (drops CAP_SYS_RESOURCE, which this host cannot grant) as Docker's default runtime"
    return 0
  fi
  return 1
}

start_dockerd() {
  if pgrep -x dockerd >/dev/null; then
    log "restarting dockerd to load $daemon_json"
    as_root pkill -x dockerd
    for _ in $(seq 1 100); do pgrep -x dockerd >/dev/null || break; sleep 0.2; done
  fi
  command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1 &&
    { as_root systemctl restart docker; return; }
  log "starting dockerd (log: $dockerd_log)"
  as_root bash -c "nohup /usr/sbin/dockerd >>'$dockerd_log' 2>&1 &"
}

wait_for_docker() {
  for _ in $(seq 1 150); do docker_answers && return 0; sleep 0.2; done
  die "dockerd did not answer within 30s; see $dockerd_log"
}

main() {
  raise_inotify_limits
  local need_wrapper=false
  bounding_lacks_sys_resource && need_wrapper=true

  if ! docker_answers; then
    [[ -x /usr/sbin/dockerd ]] || install_docker_engine
    command -v jq >/dev/null || install_docker_engine
    $need_wrapper && install_runtime_wrapper || true
    start_dockerd
    wait_for_docker
  elif $need_wrapper && ! privileged_works; then
    command -v jq >/dev/null || install_docker_engine
    install_runtime_wrapper && { start_dockerd; wait_for_docker; }
  fi
  log "docker $(docker version --format '{{.Server.Version}}') answers; cgroup $(docker info --format '{{.CgroupVersion}}')"
}

main "$@"
