#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubectl, kwok and helm from
# their Go modules into a cache folder outside the clone, keyed by the versions in hack/versions.env.
# A warm run finds the finished folder and returns at once.
#
# Usage: hack/build-controlplane.sh            builds (or reuses) and prints the bin folder
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_gw-${GATEWAY_API_VERSION}"
out="$cache_root/controlplane/$key"
bin="$out/bin"
k8s_tools=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)
tools=(etcd "${k8s_tools[@]}" kwok helm)

log() { printf '[build-controlplane] %s\n' "$*" >&2; }
die() { printf '[build-controlplane] error: %s\n' "$*" >&2; exit 1; }

missing_k8s=()
for t in "${k8s_tools[@]}"; do [[ -x "$bin/$t" ]] || missing_k8s+=("$t"); done
if [[ -f "$out/.complete" && ${#missing_k8s[@]} -eq 0 ]]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed (need Go >= 1.25 on PATH; Debian's golang is too old, use the toolchain from the Go distribution)"
gover=$(go env GOVERSION)
case "$gover" in
  go1.2[5-9]*|go1.[3-9]*) ;;
  *) die "Go $gover is too old: Kubernetes ${KUBERNETES_VERSION} and kwok ${KWOK_VERSION} need Go >= 1.25 (kwok v0.8 needs 1.26)";;
esac

mkdir -p "$bin" "$out/work"
# Every Go build of hack/ passes -gcflags=all=-dwarf=false: -ldflags "-s -w" drops the debug information at the link
# anyway, and not generating it in the compiler saves about 14 % of a cold build's CPU (etcd: 177 -> 152 CPU-seconds).
export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOFLAGS=-mod=mod
export GOTOOLCHAIN=local CGO_ENABLED=0

fetch() { # module@version -> prints dir; exits with a clear message when it can't be fetched
  local mv=$1 dir
  if ! dir=$(go mod download -json "$mv" 2>"$out/work/download.err" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); then
    die "cannot fetch Go module $mv from the Go module proxy ($(go env GOPROXY)): $(tail -n 3 "$out/work/download.err")"
  fi
  [[ -n "$dir" ]] || die "cannot fetch Go module $mv: $(cat "$out/work/download.err")"
  echo "$dir"
}

started=$(date +%s)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- Kubernetes: a wrapper module with the staging replace lines the real go.mod carries ---
if [[ ${#missing_k8s[@]} -gt 0 ]]; then
  log "fetching k8s.io/kubernetes@${KUBERNETES_VERSION}"
  kdir=$(fetch "k8s.io/kubernetes@${KUBERNETES_VERSION}")
  minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  staging=v0.${KUBERNETES_VERSION#v1.}
  w="$out/work/kubernetes"; mkdir -p "$w"
  {
    echo "module modelyard.dev/controlplane/kubernetes"
    echo
    echo "go 1.25.0"
    echo
    echo "godebug default=go1.25"
    echo
    echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
    echo
    echo "tool ("
    for t in "${k8s_tools[@]}"; do echo "	k8s.io/kubernetes/cmd/$t"; done
    echo ")"
    echo
    # every k8s.io/<x> v0.0.0 requirement of the real go.mod points at its published staging module
    awk -v v="$staging" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print "replace " $1 " => " $1 " " v}' "$kdir/go.mod" | sort -u
  } >"$w/go.mod"
  log "resolving the Kubernetes module graph (first run downloads a few hundred MiB)"
  (cd "$w" && go mod tidy >/dev/null 2>"$w/tidy.err") || die "go mod tidy for Kubernetes failed: $(tail -n 5 "$w/tidy.err")"
  commit=$(sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' "$kdir/../cache/download/k8s.io/kubernetes/@v/${KUBERNETES_VERSION}.info" 2>/dev/null || true)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=${KUBERNETES_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=${minor}"
    ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=${commit:-unknown} -X $p.buildDate=${now}"
  done
  # one go build for all of them: their shared packages compile once, side by side, and the links run in parallel
  log "building ${missing_k8s[*]} (cold: about 15 minutes on 2 cores)"
  rm -rf "$out/work/bin"
  mkdir -p "$out/work/bin"
  (cd "$w" && go build -trimpath -gcflags=all=-dwarf=false -tags selinux,notest,grpcnotrace -ldflags "$ld" -o "$out/work/bin/" \
    "${missing_k8s[@]/#/k8s.io/kubernetes/cmd/}") || die "building ${missing_k8s[*]} failed (see the go output above)"
  for t in "${missing_k8s[@]}"; do mv "$out/work/bin/$t" "$bin/$t"; done  # in place only once all are built
fi

# --- etcd: wrapper module, the server module's main ---
if [[ ! -x "$bin/etcd" ]]; then
  log "building etcd ${ETCD_VERSION}"
  fetch "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null
  w="$out/work/etcd"; mkdir -p "$w"
  printf 'module modelyard.dev/controlplane/etcd\n\ngo 1.25.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n\ntool go.etcd.io/etcd/server/v3\n' "$ETCD_VERSION" >"$w/go.mod"
  (cd "$w" && go mod tidy >/dev/null 2>"$w/tidy.err") || die "go mod tidy for etcd failed: $(tail -n 5 "$w/tidy.err")"
  (cd "$w" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3) || die "building etcd failed"
  mv "$bin/etcd.tmp" "$bin/etcd"
fi

# --- kwok and helm: plain go install works (no replace lines) ---
if [[ ! -x "$bin/kwok" ]]; then
  log "building kwok ${KWOK_VERSION}"
  GOBIN="$bin" go install -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" || die "building kwok ${KWOK_VERSION} failed"
fi
kwokdir=$(fetch "sigs.k8s.io/kwok@${KWOK_VERSION}")
mkdir -p "$out/kwok-stages"
cp -r "$kwokdir/kustomize/stage/." "$out/kwok-stages/"
chmod -R u+w "$out/kwok-stages"

if [[ ! -x "$bin/helm" ]]; then
  log "building helm ${HELM_VERSION}"
  # Helm's own release build stamps the Kubernetes version it assumes for `helm template` and lint.
  kminor=${KUBERNETES_VERSION#v1.}; kminor=${kminor%%.*}
  hld="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    hld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${kminor}"
  done
  GOBIN="$bin" go install -trimpath -gcflags=all=-dwarf=false -ldflags "$hld" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" \
    || die "building helm ${HELM_VERSION} failed"
fi

# --- Gateway API CRDs (YAML shipped in its Go module) for the gatewayAPI traffic router ---
gwdir=$(fetch "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}")
mkdir -p "$out/gateway-api"
cp "$gwdir"/config/crd/standard/*.yaml "$out/gateway-api/" 2>/dev/null || true
chmod -R u+w "$out/gateway-api"

for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || die "$t is missing after the build"; done
rm -rf "$out/work"
touch "$out/.complete"
log "done in $(( $(date +%s) - started ))s: $bin"
echo "$bin"
