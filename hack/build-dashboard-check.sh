#!/usr/bin/env bash
# Builds hack/dashboard-check (Grafana's dashboard schema, through Grafana's Foundation SDK for Go: strict decoding
# and the schema's constraints) into the cache, keyed by GRAFANA_FOUNDATION_SDK_VERSION in hack/versions.env; prints
# the binary's path.
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-checker.sh" dashboard-check \
  github.com/grafana/grafana-foundation-sdk/go GRAFANA_FOUNDATION_SDK_VERSION
