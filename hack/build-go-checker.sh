#!/usr/bin/env bash
# Builds one of the project's small Go checkers (hack/<name>/: a main.go around a library of the ecosystem, e.g.
# kstatus-check around sigs.k8s.io/cli-utils, dashboard-check around Grafana's Foundation SDK) into a cache folder
# outside the clone, keyed by the library's version in hack/versions.env and by the checker's own sources. A warm run
# returns at once.
#
# Usage: hack/build-go-checker.sh NAME MODULE VERSION_VARIABLE     prints the binary's path
#        e.g. hack/build-go-checker.sh kstatus-check sigs.k8s.io/cli-utils CLI_UTILS_VERSION
# Env:   MODELYARD_CACHE  cache root (default: ~/.cache/modelyard)
set -euo pipefail

[[ $# -eq 3 ]] || { echo "usage: $0 NAME MODULE VERSION_VARIABLE" >&2; exit 2; }
name=$1 module=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
version=${!3:?"$3 is not set in hack/versions.env"}
src="$here/$name"

log() { printf '[build-%s] %s\n' "$name" "$*" >&2; }
die() { printf '[build-%s] error: %s\n' "$name" "$*" >&2; exit 1; }

grep -q "$module ${version}\$" "$src/go.mod" || die "hack/$name/go.mod does not require $module ${version} (hack/versions.env)"

cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}
sources=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
bin="$cache_root/$name/${version}/$sources/$name"

if [[ ! -x "$bin" ]]; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (the checker is built from $module)"
  log "building $name against $module ${version}"
  mkdir -p "$(dirname "$bin")"
  (cd "$src" && GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOFLAGS=-mod=readonly \
    go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$bin.tmp" .) || die "building $name failed"
  mv "$bin.tmp" "$bin"
fi

echo "$bin"
