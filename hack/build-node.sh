#!/usr/bin/env bash
# Builds what the dev cluster's real node runs besides the kubelet (which hack/build-controlplane.sh builds with
# the other Kubernetes binaries): containerd (with its runc shim and ctr), the CNI reference plugins (bridge,
# host-local, loopback, portmap), CoreDNS with the plugins the node's Corefile uses (hack/coredns) and the pod
# sandbox program (hack/pause), from their Go modules, into a
# cache folder outside the clone keyed by the versions in hack/versions.env. runc comes from Debian's package
# (make node-tools). A warm run finds the finished folder and returns at once.
#
# Usage: hack/build-node.sh            builds (or reuses) and prints the bin folder
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
pause_sum=$(sha256sum "$here/pause/main.go" | cut -c1-12)
coredns_sum=$(cat "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go" | sha256sum | cut -c1-12)
key="containerd-${CONTAINERD_VERSION}_cni-${CNI_PLUGINS_VERSION}_coredns-${COREDNS_VERSION}-${coredns_sum}_pause-${pause_sum}"
out="$cache_root/node/$key"
bin="$out/bin"
cni_plugins=(bridge host-local loopback portmap)

log() { printf '[build-node] %s\n' "$*" >&2; }
die() { printf '[build-node] error: %s\n' "$*" >&2; exit 1; }

if [[ -f "$out/.complete" ]]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "Go is not installed (need Go >= 1.25 on PATH)"
mkdir -p "$bin/cni"
export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOFLAGS=-mod=mod
export GOTOOLCHAIN=local CGO_ENABLED=0
started=$(date +%s)

install() { # GOBIN-folder package@version...: go install with a clear error
  local dest=$1; shift
  GOBIN="$dest" go install -trimpath -gcflags=all=-dwarf=false -tags "no_btrfs no_devmapper no_zfs" -ldflags "-s -w" "$@" \
    || die "go install $* failed (see the go output above)"
}

if [[ ! -x "$bin/containerd" ]]; then
  log "building containerd ${CONTAINERD_VERSION} (cold: about 3 minutes on 2 cores)"
  m=github.com/containerd/containerd/v2/cmd
  install "$bin" "$m/containerd@${CONTAINERD_VERSION}" "$m/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
    "$m/ctr@${CONTAINERD_VERSION}"
fi
if [[ ! -x "$bin/cni/bridge" ]]; then
  log "building the CNI plugins ${CNI_PLUGINS_VERSION}"
  pkgs=()
  for p in "${cni_plugins[@]}"; do
    case $p in host-local) d=ipam/$p ;; portmap) d=meta/$p ;; *) d=main/$p ;; esac
    pkgs+=("github.com/containernetworking/plugins/plugins/$d@${CNI_PLUGINS_VERSION}")
  done
  install "$bin/cni" "${pkgs[@]}"
fi
if [[ ! -x "$bin/coredns" ]]; then
  # CoreDNS's own main compiles every plugin it ships (cloud DNS SDKs, etcd, dnstap, ...): hack/coredns is the same
  # server with the plugins our Corefile uses
  grep -q "github.com/coredns/coredns ${COREDNS_VERSION}\$" "$here/coredns/go.mod" \
    || die "hack/coredns/go.mod does not require github.com/coredns/coredns ${COREDNS_VERSION} (hack/versions.env)"
  log "building CoreDNS ${COREDNS_VERSION} (hack/coredns)"
  (cd "$here/coredns" && GOFLAGS=-mod=readonly go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$bin/coredns" .) \
    || die "building CoreDNS (hack/coredns) failed (see the go output above)"
fi
if [[ ! -x "$bin/pause" ]]; then
  log "building the pod sandbox program (hack/pause)"
  (cd "$here/pause" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$bin/pause" .) || die "building hack/pause failed"
fi

for t in containerd containerd-shim-runc-v2 ctr coredns pause "${cni_plugins[@]/#/cni/}"; do
  [[ -x "$bin/$t" ]] || die "$t is missing after the build"
done
touch "$out/.complete"
log "done in $(( $(date +%s) - started ))s: $bin"
echo "$bin"
