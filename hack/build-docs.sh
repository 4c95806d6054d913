#!/usr/bin/env bash
# Builds the documentation site from docs/ with `mkdocs build --strict` (every page in the nav, every link and
# anchor resolved; any warning fails). MkDocs and MkDocs Material are installed into their own environment in a cache
# folder keyed by their versions in hack/versions.env, so their pins never move the project's and a warm run only
# builds.
#
# Usage: hack/build-docs.sh [SITE_DIR]   (default: site/, ignored by git)
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
env_dir="$cache_root/mkdocs/${MKDOCS_VERSION}-material-${MKDOCS_MATERIAL_VERSION}"
site=${1:-$repo/site}

log() { printf '[build-docs] %s\n' "$*" >&2; }
die() { printf '[build-docs] error: %s\n' "$*" >&2; exit 1; }

if [[ ! -f "$env_dir/.complete" ]]; then
  python=${PYTHON:-python3}
  log "installing mkdocs ${MKDOCS_VERSION} and mkdocs-material ${MKDOCS_MATERIAL_VERSION} into $env_dir"
  rm -rf "$env_dir"
  "$python" -m venv "$env_dir" || die "cannot create a virtual environment with $python"
  "$env_dir/bin/python" -m pip install -q --upgrade pip >/dev/null || die "pip upgrade failed"
  "$env_dir/bin/python" -m pip install -q "mkdocs==${MKDOCS_VERSION}" "mkdocs-material==${MKDOCS_MATERIAL_VERSION}" \
    || die "installing mkdocs-material ${MKDOCS_MATERIAL_VERSION} failed"
  touch "$env_dir/.complete"
fi

cd "$repo"
set +e
NO_MKDOCS_2_WARNING=1 "$env_dir/bin/mkdocs" build --strict --site-dir "$site" 2>&1 | grep -v -e '^INFO' -e '^$' >&2
status=${PIPESTATUS[0]}
set -e
[[ $status -eq 0 ]] || die "the docs site has warnings (above): fix them, strict mode fails on any"
log "site built in $site"
