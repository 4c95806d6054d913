#!/usr/bin/env bash
# Builds hack/kstatus-check (a few lines of Go around sigs.k8s.io/cli-utils/pkg/kstatus, the library Flux and kpt
# compute health with) into the cache, keyed by CLI_UTILS_VERSION in hack/versions.env; prints the binary's path.
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-checker.sh" kstatus-check sigs.k8s.io/cli-utils CLI_UTILS_VERSION
