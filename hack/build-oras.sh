#!/usr/bin/env bash
# Builds the ORAS CLI (used by the loader's OCI tests to push artifacts) from its Go module into a cache
# folder outside the clone, keyed by version. A warm run finds the binary and returns at once.
#
# Usage: hack/build-oras.sh     builds (or reuses) and prints the path of the oras binary
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard); ORAS_VERSION (default below)
set -euo pipefail

version=${ORAS_VERSION:-v1.3.6}
cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
bin="$cache_root/oras/$version/bin"

if [[ -x "$bin/oras" ]]; then
  echo "$bin/oras"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "[build-oras] error: Go is not installed" >&2; exit 1; }
mkdir -p "$bin"
echo "[build-oras] go install oras.land/oras/cmd/oras@$version" >&2
GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOBIN="$bin" GOTOOLCHAIN=local CGO_ENABLED=0 \
  GOFLAGS=-mod=mod \
  go install -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" "oras.land/oras/cmd/oras@$version" >&2
echo "$bin/oras"
