#!/usr/bin/env bash
# Builds MinIO (the S3-compatible server of the loader's S3 tests) from its Go module into a cache folder outside
# the clone keyed by MINIO_VERSION in hack/versions.env. A warm run returns at once.
#
# Usage: hack/build-minio.sh     prints one line: the minio binary
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
bin="$cache_root/minio/${MINIO_VERSION}/bin"

log() { printf '[build-minio] %s\n' "$*" >&2; }
die() { printf '[build-minio] error: %s\n' "$*" >&2; exit 1; }

if [[ ! -x "$bin/minio" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (MinIO is built from its Go module)"
  log "building minio ${MINIO_VERSION} (a cold build takes several minutes)"
  mkdir -p "$bin"
  start=$(date +%s)
  # GOFLAGS=-mod=mod: the module's go.mod replaces nothing we need; GOTOOLCHAIN=local: never download a toolchain
  GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOBIN="$bin.tmp" \
    go install -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" "github.com/minio/minio@${MINIO_VERSION}" \
    || { rm -rf "$bin.tmp"; die "building minio ${MINIO_VERSION} failed"; }
  mv "$bin.tmp/minio" "$bin/minio"
  rmdir "$bin.tmp"
  log "built minio in $(( $(date +%s) - start )) s"
fi

echo "$bin/minio"
