#!/usr/bin/env bash
# Builds kubeconform from its Go module and installs checkov from PyPI into its own virtual environment, each in a
# cache folder outside the clone keyed by its version in hack/versions.env. A warm run returns at once.
#
# Usage: hack/build-checktools.sh       prints two lines: the kubeconform binary, the checkov executable
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
kc_bin="$cache_root/kubeconform/${KUBECONFORM_VERSION}/bin"
ck_env="$cache_root/checkov/${CHECKOV_VERSION}"

log() { printf '[build-checktools] %s\n' "$*" >&2; }
die() { printf '[build-checktools] error: %s\n' "$*" >&2; exit 1; }

if [[ ! -x "$kc_bin/kubeconform" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (kubeconform is built from its Go module)"
  log "building kubeconform ${KUBECONFORM_VERSION}"
  mkdir -p "$kc_bin"
  GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOBIN="$kc_bin" \
    go install -trimpath -ldflags "-s -w" "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" \
    || die "building kubeconform ${KUBECONFORM_VERSION} failed"
fi

if [[ ! -f "$ck_env/.complete" ]]; then
  python=${PYTHON:-python3}
  log "installing checkov ${CHECKOV_VERSION} into $ck_env (its own environment: its pins must not move the project's)"
  rm -rf "$ck_env"
  "$python" -m venv "$ck_env" || die "cannot create a virtual environment with $python"
  "$ck_env/bin/python" -m pip install -q --upgrade pip >/dev/null || die "pip upgrade failed"
  "$ck_env/bin/python" -m pip install -q "checkov==${CHECKOV_VERSION}" || die "installing checkov ${CHECKOV_VERSION} failed"
  touch "$ck_env/.complete"
fi

echo "$kc_bin/kubeconform"
echo "$ck_env/bin/checkov"
