#!/usr/bin/env bash
# Fetches the Prometheus Operator's CRDs for PodMonitor, PrometheusRule and ServiceMonitor from its Go module (the
# Go module proxy serves it; container registries and GitHub are not reachable here) into a cache folder keyed by
# PROMETHEUS_OPERATOR_VERSION in hack/versions.env. A warm run returns at once.
#
# Usage: hack/fetch-monitoring-crds.sh     prints the folder that holds the three CRD files
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

tool=fetch-monitoring-crds
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out="$cache_root/monitoring-crds/${PROMETHEUS_OPERATOR_VERSION}"
kinds=(podmonitors prometheusrules servicemonitors)

if [[ ! -f "$out/.complete" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (the CRDs come from the prometheus-operator Go module)"
  log "prometheus-operator ${PROMETHEUS_OPERATOR_VERSION}"
  module="github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}"
  dir=$(GOMODCACHE="$cache_root/go/mod" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        go mod download -json "$module" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || die "cannot download $module"
  rm -rf "$out" && mkdir -p "$out"
  for kind in "${kinds[@]}"; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_${kind}.yaml" "$out/" || die "$module has no CRD for $kind"
  done
  touch "$out/.complete"
fi
echo "$out"
