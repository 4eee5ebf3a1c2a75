package config

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The files that promise to show every setting (config/example.yaml, the
// file `keygate demo` writes) and docs/configuration.md are checked against
// the settings listed here, which come from the yaml tags of the file
// types: a new setting is missed by the tests, not by the reader.

// mapKeyPlaceholder stands for a key the user chooses, in a mapping whose
// values are settings themselves (custom_preset.responses).
const mapKeyPlaceholder = "<code>"

// unshowableSettings exist in the file types but no valid file can set
// them: public and failed-authentication requests have no plan.
var unshowableSettings = []string{
	"apis[].rate_limits.public.plans",
	"apis[].rate_limits.failed_auth.plans",
}

// SettingPaths lists every setting the config file accepts, sorted, as
// paths such as apis[].routes[].scopes: "[]" stands for any list item and
// "<code>" for a key the user chooses (apis[].custom_preset.responses.<code>.status).
func SettingPaths() []string {
	paths := map[string]bool{}
	schemaPaths(reflect.TypeOf(fileConfig{}), "", paths)
	return slices.Sorted(maps.Keys(paths))
}

// MissingSettings returns the settings, written as SettingPaths writes
// them, that a config file does not show, sorted; settings no valid file
// can hold are not asked for. Keys the file types do not know are passed
// over: Parse is what refuses them.
func MissingSettings(file []byte) ([]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(file, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("the file holds no YAML document")
	}
	shown := map[string]bool{}
	nodePaths(doc.Content[0], reflect.TypeOf(fileConfig{}), "", shown)
	var missing []string
	for _, p := range SettingPaths() {
		if !shown[p] && !slices.Contains(unshowableSettings, p) {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// schemaPaths adds the path of every setting under type t to out.
func schemaPaths(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		for _, key := range yamlKeys(t) {
			f, _ := fieldByKey(t, key)
			p := joinPath(prefix, key)
			out[p] = true
			schemaPaths(f.Type, p, out)
		}
	case reflect.Slice:
		schemaPaths(t.Elem(), prefix+"[]", out)
	case reflect.Map:
		if e := t.Elem(); e.Kind() == reflect.Struct {
			schemaPaths(e, prefix+"."+mapKeyPlaceholder, out)
		}
	}
}

// nodePaths adds the path of every setting that node n, decoded as type t,
// holds to out, written the way schemaPaths writes them.
func nodePaths(n *yaml.Node, t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			f, ok := fieldByKey(t, n.Content[i].Value)
			if !ok {
				continue
			}
			p := joinPath(prefix, n.Content[i].Value)
			out[p] = true
			nodePaths(n.Content[i+1], f.Type, p, out)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for _, item := range n.Content {
			nodePaths(item, t.Elem(), prefix+"[]", out)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			nodePaths(n.Content[i+1], t.Elem(), prefix+"."+mapKeyPlaceholder, out)
		}
	}
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}
