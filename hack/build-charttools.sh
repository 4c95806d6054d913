#!/usr/bin/env bash
# Builds helm-docs (the chart README from the values' `# --` comments) and helm-unittest (the chart's unit suites,
# run as a standalone binary, no helm plugin install) from their Go modules into cache folders keyed by their
# versions in hack/versions.env. A warm run returns at once.
#
# Usage: hack/build-charttools.sh       prints two lines: the helm-docs binary, the helm-unittest binary
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

tool=build-charttools
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
docs_bin="$cache_root/helm-docs/${HELM_DOCS_VERSION}/bin"
unit_bin="$cache_root/helm-unittest/${HELM_UNITTEST_VERSION}/bin"
export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0

if [[ ! -x "$docs_bin/helm-docs" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (helm-docs is built from its Go module)"
  log "building helm-docs ${HELM_DOCS_VERSION}"
  mkdir -p "$docs_bin"
  GOBIN="$docs_bin" go install -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" "github.com/norwoodj/helm-docs/cmd/helm-docs@${HELM_DOCS_VERSION}" \
    || die "building helm-docs ${HELM_DOCS_VERSION} failed"
fi

if [[ ! -x "$unit_bin/helm-unittest" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (helm-unittest is built from its Go module)"
  log "building helm-unittest ${HELM_UNITTEST_VERSION}"
  module="github.com/helm-unittest/helm-unittest@${HELM_UNITTEST_VERSION}"
  # its go.mod has replace directives, which `go install module@version` refuses: build inside the module instead
  src=$(go mod download -json "$module" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
    || die "cannot download $module"
  mkdir -p "$unit_bin"
  (cd "$src" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$unit_bin/helm-unittest.tmp" ./cmd/helm-unittest) \
    || die "building helm-unittest ${HELM_UNITTEST_VERSION} failed"
  mv "$unit_bin/helm-unittest.tmp" "$unit_bin/helm-unittest"
fi

echo "$docs_bin/helm-docs"
echo "$unit_bin/helm-unittest"
