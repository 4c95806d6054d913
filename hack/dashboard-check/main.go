// dashboard-check validates Grafana dashboard JSON against Grafana's dashboard schema, as Grafana's Foundation SDK
// generates it (strict decoding: a missing required field, a field of the wrong type or an unknown field fails;
// then the schema's constraints). Panels and queries are decoded by their plugin's own schema.
//
// A file in Grafana's export format ("export for sharing externally") carries __inputs, __elements and __requires
// besides the dashboard; Grafana's import takes them off before it stores the dashboard, and so does this check. The
// line printed for a file names the Grafana version its __requires declares and its schemaVersion.
//
// Usage: dashboard-check FILE...    prints one line per file; exit 1 when any file fails, 2 on usage errors.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// exportFields are the export format's additions to a dashboard, which Grafana's import removes.
var exportFields = []string{"__inputs", "__elements", "__requires"}

type requirement struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Version string `json:"version"`
}

// failed tells an error from the SDK's empty error list, which some of its decoders return for success.
func failed(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}

// check returns the Grafana version the file declares ("" when none) and schemaVersion, or why it fails.
func check(path string) (string, uint16, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return "", 0, fmt.Errorf("not a JSON object: %w", err)
	}
	declared := ""
	var requires []requirement
	if r, ok := fields["__requires"]; ok {
		if err := json.Unmarshal(r, &requires); err != nil {
			return "", 0, fmt.Errorf("__requires: %w", err)
		}
	}
	for _, r := range requires {
		if r.Type == "grafana" {
			declared = r.Version
		}
	}
	for _, f := range exportFields {
		delete(fields, f)
	}
	if raw, err = json.Marshal(fields); err != nil {
		return "", 0, err
	}
	var dash dashboard.Dashboard
	if err := dash.UnmarshalJSONStrict(raw); failed(err) {
		return declared, 0, fmt.Errorf("does not decode under the schema: %w", err)
	}
	if err := dash.Validate(); failed(err) {
		return declared, dash.SchemaVersion, fmt.Errorf("breaks the schema's constraints: %w", err)
	}
	return declared, dash.SchemaVersion, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		declared, schemaVersion, err := check(path)
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("ok %s (declares Grafana %s, schemaVersion %d)\n", path, declared, schemaVersion)
	}
	if failed {
		os.Exit(1)
	}
}
