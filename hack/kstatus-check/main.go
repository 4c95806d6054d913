// kstatus-check prints the status that sigs.k8s.io/cli-utils/pkg/kstatus computes for Kubernetes objects: the
// same library Flux, kpt and `kubectl wait`-style tools use to decide whether a resource is Current, InProgress
// or Failed. The tests run it on ModelDeployments and ModelVersions read from a real API server.
//
// Usage: kstatus-check < objects
//
// The input is JSON or YAML, one or more documents; a List (what `kubectl get -o json` prints) counts as its
// items. One JSON line per object goes to stdout: {"kind", "namespace", "name", "status", "message"}.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func report(out *json.Encoder, u *unstructured.Unstructured) error {
	res, err := status.Compute(u)
	if err != nil {
		return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return out.Encode(line{u.GetKind(), u.GetNamespace(), u.GetName(), res.Status.String(), res.Message})
}

func run(in io.Reader, w io.Writer) error {
	dec := yaml.NewYAMLOrJSONDecoder(in, 4096)
	out := json.NewEncoder(w)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading objects: %w", err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty YAML document
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil { // integers stay int64, as kstatus expects
			return fmt.Errorf("reading an object: %w", err)
		}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return fmt.Errorf("reading a list: %w", err)
			}
			for i := range list.Items {
				if err := report(out, &list.Items[i]); err != nil {
					return err
				}
			}
			continue
		}
		if err := report(out, u); err != nil {
			return err
		}
	}
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus-check:", err)
		os.Exit(1)
	}
}
