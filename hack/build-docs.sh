#!/usr/bin/env bash
# Builds the documentation site from docs/ with `mkdocs build --strict` (every page in the nav, every link and
# anchor resolved; any warning fails). MkDocs and MkDocs Material are installed into their own environment in a cache
# folder keyed by their versions in hack/versions.env, so their pins never move the project's and a warm run only
# builds.
#
# Usage: hack/build-docs.sh [SITE_DIR]   (default: site/, ignored by git)
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

tool=build-docs
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
repo=$(cd "$here/.." && pwd)
env_dir="$cache_root/mkdocs/${MKDOCS_VERSION}-material-${MKDOCS_MATERIAL_VERSION}"
site=${1:-$repo/site}

pip_env "$env_dir" "mkdocs==${MKDOCS_VERSION}" "mkdocs-material==${MKDOCS_MATERIAL_VERSION}"

cd "$repo"
set +e
NO_MKDOCS_2_WARNING=1 "$env_dir/bin/mkdocs" build --strict --site-dir "$site" 2>&1 | grep -v -e '^INFO' -e '^$' >&2
status=${PIPESTATUS[0]}
set -e
[[ $status -eq 0 ]] || die "the docs site has warnings (above): fix them, strict mode fails on any"
log "site built in $site"
