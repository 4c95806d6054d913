#!/usr/bin/env bash
# Builds kubeconform from its Go module and installs checkov from PyPI into its own virtual environment, each in a
# cache folder outside the clone keyed by its version in hack/versions.env. A warm run returns at once.
#
# Usage: hack/build-checktools.sh       prints two lines: the kubeconform binary, the checkov executable
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

tool=build-checktools
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kc_bin="$cache_root/kubeconform/${KUBECONFORM_VERSION}/bin"
ck_env="$cache_root/checkov/${CHECKOV_VERSION}"

if [[ ! -x "$kc_bin/kubeconform" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (kubeconform is built from its Go module)"
  log "building kubeconform ${KUBECONFORM_VERSION}"
  mkdir -p "$kc_bin"
  GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOBIN="$kc_bin" \
    go install -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" \
    || die "building kubeconform ${KUBECONFORM_VERSION} failed"
fi

pip_env "$ck_env" "checkov==${CHECKOV_VERSION}"

echo "$kc_bin/kubeconform"
echo "$ck_env/bin/checkov"
