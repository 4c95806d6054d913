# Shared by the hack/build-*.sh scripts that cache tools outside the clone: source it after setting `tool` (the
# prefix of log lines). Defines cache_root, log, die, and pip_env (a tool installed from PyPI into its own virtual
# environment, so its pins never move the project's).
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache_root=${MODELYARD_CACHE:-$HOME/.cache/modelyard}

log() { printf '[%s] %s\n' "$tool" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$tool" "$*" >&2; exit 1; }

# pip_env DIR REQUIREMENT...: a virtual environment in DIR with REQUIREMENTs, made once (DIR/.complete marks it)
pip_env() {
  local dir=$1; shift
  [[ -f "$dir/.complete" ]] && return 0
  local python=${PYTHON:-python3}
  log "installing $* into $dir (its own environment: its pins must not move the project's)"
  rm -rf "$dir"
  "$python" -m venv "$dir" || die "cannot create a virtual environment with $python"
  "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null || die "pip upgrade failed"
  "$dir/bin/python" -m pip install -q "$@" || die "installing $* failed"
  touch "$dir/.complete"
}
