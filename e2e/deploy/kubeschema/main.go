// Command kubeschema turns the OpenAPI document of a Kubernetes release
// (api/openapi-spec/swagger.json in the k8s.io/kubernetes module, which
// the Go module proxy serves) into the standalone, strict JSON schemas
// kubeconform reads, laid out as kubeconform's own schema repository:
//
//	<out>/v<version>-standalone-strict/<kind>-<group>-<version>.json
//
// so .ci/run validates deploy/kubernetes/ against the Kubernetes schemas
// without reaching the network. The conversion is the one
// openapi2jsonschema makes for kubeconform's published schemas: each
// kind's schema carries the definitions it refers to, objects refuse
// properties the API does not define (as kubectl's validation does),
// int-or-string fields take either, and quantities take a string or a
// number.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	in := flag.String("openapi", "", "swagger.json of a Kubernetes release")
	out := flag.String("out", "", "directory to write the schemas into")
	version := flag.String("kubernetes-version", "", "the release, e.g. 1.37.2")
	flag.Parse()
	if *in == "" || *out == "" || *version == "" {
		fmt.Fprintln(os.Stderr, "usage: kubeschema -openapi swagger.json -kubernetes-version 1.37.2 -out DIR")
		os.Exit(2)
	}
	n, err := run(*in, *out, *version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeschema:", err)
		os.Exit(1)
	}
	fmt.Printf("kubeschema: %d kinds of Kubernetes %s written to %s\n", n, *version, *out)
}

const refPrefix = "#/definitions/"

func run(in, out, version string) (int, error) {
	raw, err := os.ReadFile(in)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", in, err)
	}
	if len(doc.Definitions) == 0 {
		return 0, fmt.Errorf("%s has no definitions", in)
	}
	defs := map[string]any{}
	for name, d := range doc.Definitions {
		defs[name] = convert(name, d)
	}
	dir := filepath.Join(out, "v"+strings.TrimPrefix(version, "v")+"-standalone-strict")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	written := 0
	for _, name := range names {
		d := defs[name].(map[string]any)
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk := g.(map[string]any)
			group, _ := gvk["group"].(string)
			ver, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if kind == "" || ver == "" {
				continue
			}
			schema := standalone(name, defs)
			b, err := json.Marshal(schema)
			if err != nil {
				return written, err
			}
			if err := os.WriteFile(filepath.Join(dir, fileName(group, ver, kind)), b, 0o644); err != nil {
				return written, err
			}
			written++
		}
	}
	return written, nil
}

// fileName is kubeconform's: the kind in lower case, the first label of
// the group, the version ("deployment-apps-v1.json", "service-v1.json",
// "networkpolicy-networking-v1.json").
func fileName(group, version, kind string) string {
	suffix := ""
	if group != "" {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0])
	}
	return strings.ToLower(kind) + suffix + "-" + strings.ToLower(version) + ".json"
}

// standalone is the schema of one definition with every definition it
// reaches, so the file needs no other.
func standalone(name string, defs map[string]any) map[string]any {
	reached := map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && strings.HasPrefix(ref, refPrefix) {
				target := strings.TrimPrefix(ref, refPrefix)
				if _, seen := reached[target]; !seen {
					reached[target] = defs[target]
					walk(defs[target])
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	reached[name] = defs[name]
	walk(defs[name])
	return map[string]any{
		"$schema":     "http://json-schema.org/schema#",
		"$ref":        refPrefix + name,
		"definitions": reached,
	}
}

// convert applies kubeconform's strict reading to one definition.
func convert(name string, v any) any {
	switch name {
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	}
	return strict(v)
}

func strict(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		out := make(map[string]any, len(x)+1)
		for k, e := range x {
			if k == "properties" {
				props := map[string]any{}
				for pk, pv := range e.(map[string]any) {
					props[pk] = strict(pv)
				}
				out[k] = props
				continue
			}
			out[k] = strict(e)
		}
		if _, ok := x["properties"]; ok {
			if _, set := x["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = strict(e)
		}
		return out
	}
	return v
}
