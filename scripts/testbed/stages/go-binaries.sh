#!/usr/bin/env bash
# Builds the test bed's Go binaries from the Go module proxy, one component at a time.
#
#   go-binaries.sh OUT_DIR COMPONENT...
#
# Each component lands in OUT_DIR/<component>/ with a .stamp holding the hash of its recipe
# (the versions below, the build flags and the Go version); a component whose stamp matches is
# skipped. Versions come from the environment (exported by scripts/testbed/build.py from
# svclab/pins.toml).
set -euo pipefail

out_root=$1; shift
work=${TESTBED_WORK:-$out_root/.work}
mkdir -p "$out_root" "$work"
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN=local
LDFLAGS_STRIP="-s -w"

log() { printf '[go-binaries] %s\n' "$*" >&2; }

recipe_hash() { # component -> hash of the Go version, its build function and the versions it reads
  local body var
  body=$(declare -f "build_$1")
  { go env GOVERSION; echo "$body"
    for var in $(grep -oE 'V_[A-Z_]+' <<<"$body" | sort -u); do
      if [[ -d ${!var} ]]; then  # a source folder: its content counts, not where it lives
        (cd "${!var}" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
      else
        echo "$var=${!var}"
      fi
    done
  } | sha256sum | cut -c1-16
}

in_module_copy() { # module version -> a writable copy of the module's source, as the main module
  local dir=$work/${1//\//_}@$2 src
  src=$(go mod download -json "$1@$2" | jq -r .Dir)
  rm -rf "$dir" && cp -r "$src" "$dir" && chmod -R u+w "$dir"
  echo "$dir"
}

build_kind() {
  GOBIN=$1 go install -ldflags "$LDFLAGS_STRIP" "sigs.k8s.io/kind@$V_KIND"
}

build_containerd() {
  # containerd's go.mod has exclude directives, so it builds as the main module.
  cd "$(in_module_copy github.com/containerd/containerd/v2 "$V_CONTAINERD")"
  go build -mod=mod -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    -ldflags "$LDFLAGS_STRIP -X github.com/containerd/containerd/v2/version.Version=$V_CONTAINERD" \
    -o "$1/" ./cmd/containerd ./cmd/ctr ./cmd/containerd-shim-runc-v2
}

build_runc() {
  # runc's nsenter needs cgo; seccomp is required by RuntimeDefault profiles.
  CGO_ENABLED=1 GOBIN=$1 go install -tags seccomp \
    -ldflags "$LDFLAGS_STRIP -X main.version=${V_RUNC#v}" "github.com/opencontainers/runc@$V_RUNC"
}

build_crictl() {
  GOBIN=$1 go install -ldflags "$LDFLAGS_STRIP -X sigs.k8s.io/cri-tools/pkg/version.Version=$V_CRICTL" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$V_CRICTL"
}

build_cni() {
  local p=github.com/containernetworking/plugins/plugins
  GOBIN=$1 go install -ldflags "$LDFLAGS_STRIP" \
    "$p/ipam/host-local@$V_CNI_PLUGINS" "$p/main/loopback@$V_CNI_PLUGINS" \
    "$p/main/ptp@$V_CNI_PLUGINS" "$p/meta/portmap@$V_CNI_PLUGINS"
}

build_etcd() {
  # etcd's server module has replace directives, so it is built inside a throwaway main module.
  local dir=$work/etcd-wrap
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init svclab.local/etcdwrap >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$V_ETCD" "go.etcd.io/etcd/etcdctl/v3@$V_ETCD" >/dev/null
  go build -ldflags "$LDFLAGS_STRIP" -o "$1/etcd" go.etcd.io/etcd/server/v3
  go build -ldflags "$LDFLAGS_STRIP" -o "$1/etcdctl" go.etcd.io/etcd/etcdctl/v3
}

build_coredns() {
  GOBIN=$1 go install -ldflags "$LDFLAGS_STRIP -X github.com/coredns/coredns/coremain.GitCommit=$V_COREDNS" \
    "github.com/coredns/coredns@$V_COREDNS"
}

build_kubernetes() {
  # k8s.io/kubernetes points its staging modules at ./staging with replace directives, which
  # `go install pkg@version` refuses. A throwaway main module requires the release and replaces
  # each staging module with its published tag; then one `go build` makes every command we need
  # (and agnhost, the echo backend, which lives in the same module).
  local dir=$work/k8s-wrap
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init svclab.local/k8swrap >/dev/null 2>&1
  go mod edit -go=1.24.0 -require="k8s.io/kubernetes@$V_KUBERNETES"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$V_KUBERNETES" | jq -r .GoMod)
  local m
  for m in $(awk '$2=="=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@$V_KUBE_STAGING"
  done
  local pkgs=(cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kube-proxy
              cmd/kubelet cmd/kubeadm cmd/kubectl test/images/agnhost)
  { echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
    for m in "${pkgs[@]}"; do echo "	_ \"k8s.io/kubernetes/$m\""; done; echo ')'; } > tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
  local minor=${V_KUBERNETES#v1.}; minor=${minor%%.*}
  local ld="$LDFLAGS_STRIP" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$V_KUBERNETES -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ld="$ld -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  go build -tags=selinux,notest,grpcnotrace -ldflags "$ld" -o "$1/" "${pkgs[@]/#/k8s.io/kubernetes/}"
}

build_metallb() {
  local v=go.universe.tf/metallb/internal/version
  GOBIN=$1 go install -ldflags "$LDFLAGS_STRIP -X $v.gitCommit=$V_METALLB -X $v.gitBranch=$V_METALLB" \
    "go.universe.tf/metallb/controller@$V_METALLB" "go.universe.tf/metallb/speaker@$V_METALLB"
}

build_kube_vip() {
  # The proxy serves these versions but refuses the module's version list, which `go install
  # pkg@version` asks for; building inside a copy of each module needs only the version itself.
  (cd "$(in_module_copy github.com/kube-vip/kube-vip "$V_KUBE_VIP")" &&
    go build -mod=mod -ldflags "$LDFLAGS_STRIP -X=main.Version=$V_KUBE_VIP -X=main.Build=svclab-testbed" \
      -o "$1/kube-vip" .)
  (cd "$(in_module_copy github.com/kube-vip/kube-vip-cloud-provider "$V_KUBE_VIP_CLOUD_PROVIDER")" &&
    go build -mod=mod -ldflags "$LDFLAGS_STRIP -X k8s.io/component-base/version.gitVersion=$V_KUBE_VIP_CLOUD_PROVIDER" \
      -o "$1/kube-vip-cloud-provider" .)
}

build_traefik() {
  # Traefik's go.mod has replace directives, so it builds inside a copy of its module. The web
  # dashboard's assets are not part of the module; the proxy works without them.
  (cd "$(in_module_copy github.com/traefik/traefik/v3 "$V_TRAEFIK")" &&
    go build -mod=mod -ldflags "$LDFLAGS_STRIP -X github.com/traefik/traefik/v3/pkg/version.Version=$V_TRAEFIK" \
      -o "$1/traefik" ./cmd/traefik)
}

build_podnet() {
  # The test bed's pod network agent, built inside the Kubernetes wrapper module so that it shares
  # its dependency versions and build cache.
  local dir=$work/k8s-wrap
  [[ -f $dir/go.mod ]] || { log "podnet is built after the kubernetes component"; return 1; }
  rm -rf "$dir/podnet" && cp -r "$V_PODNET_SRC" "$dir/podnet" && rm -f "$dir/podnet/"*.yaml
  cd "$dir" && go mod tidy >/dev/null 2>&1
  go build -ldflags "$LDFLAGS_STRIP" -o "$1/podnet" ./podnet
}

for component in "$@"; do
  dest=$out_root/$component
  want=$(recipe_hash "$component")
  if [[ -f $dest/.stamp && $(cat "$dest/.stamp") == "$want" ]]; then
    log "$component: cached ($want)"
    continue
  fi
  log "$component: building"
  start=$SECONDS
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  ( "build_$component" "$dest.tmp" )
  echo "$want" > "$dest.tmp/.stamp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  log "$component: built in $((SECONDS - start))s"
done
