#!/usr/bin/env bash
# Builds hack/kstatus-check (a few lines of Go around sigs.k8s.io/cli-utils/pkg/kstatus, the library Flux and kpt
# compute health with) into a cache folder outside the clone, keyed by CLI_UTILS_VERSION in hack/versions.env and by
# the checker's own sources. A warm run returns at once.
#
# Usage: hack/build-kstatus-check.sh     prints the binary's path
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
src="$here/kstatus-check"

log() { printf '[build-kstatus-check] %s\n' "$*" >&2; }
die() { printf '[build-kstatus-check] error: %s\n' "$*" >&2; exit 1; }

grep -q "sigs.k8s.io/cli-utils ${CLI_UTILS_VERSION}\$" "$src/go.mod" \
  || die "hack/kstatus-check/go.mod does not require sigs.k8s.io/cli-utils ${CLI_UTILS_VERSION} (hack/versions.env)"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
sources=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
bin="$cache_root/kstatus-check/${CLI_UTILS_VERSION}/$sources/kstatus-check"

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (the checker is built from sigs.k8s.io/cli-utils)"
  log "building kstatus-check against sigs.k8s.io/cli-utils ${CLI_UTILS_VERSION}"
  mkdir -p "$(dirname "$bin")"
  (cd "$src" && GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "-s -w" -o "$bin.tmp" .) || die "building kstatus-check failed"
  mv "$bin.tmp" "$bin"
fi

echo "$bin"
