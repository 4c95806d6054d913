#!/usr/bin/env bash
# Builds prometheus-adapter (the custom.metrics.k8s.io API server the autoscaling end-to-end test registers beside
# the dev cluster's API server) from its Go module into a cache folder keyed by PROMETHEUS_ADAPTER_VERSION in
# hack/versions.env. A warm run returns at once.
#
# Usage: hack/build-prometheus-adapter.sh     prints the binary's path
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

tool=build-prometheus-adapter
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin="$cache_root/prometheus-adapter/${PROMETHEUS_ADAPTER_VERSION}/bin/adapter"
export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (prometheus-adapter is built from its Go module)"
  log "building prometheus-adapter ${PROMETHEUS_ADAPTER_VERSION}"
  module="sigs.k8s.io/prometheus-adapter@${PROMETHEUS_ADAPTER_VERSION}"
  # build inside the downloaded module, with its own go.mod and go.sum (replace directives included)
  src=$(go mod download -json "$module" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
    || die "cannot download $module from the Go module proxy ($(go env GOPROXY))"
  mkdir -p "$(dirname "$bin")"
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$bin.tmp" ./cmd/adapter) \
    || die "building prometheus-adapter ${PROMETHEUS_ADAPTER_VERSION} failed"
  mv "$bin.tmp" "$bin"
fi

echo "$bin"
