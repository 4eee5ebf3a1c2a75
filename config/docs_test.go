package config

import (
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// These tests keep docs/configuration.md and Example in step with the
// settings the code accepts: a new key without documentation fails here.

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mapKeyPlaceholder stands for a key the user chooses, in a mapping whose
// values are settings themselves (custom_preset.responses).
const mapKeyPlaceholder = "<code>"

// schemaPaths lists every setting path the file accepts, from the yaml tags
// of the file types.
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

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// nodePaths lists the setting paths a YAML document uses, written the way
// schemaPaths writes them.
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

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestDocumentationNamesEverySetting(t *testing.T) {
	doc := readDoc(t)
	paths := map[string]bool{}
	schemaPaths(reflect.TypeOf(fileConfig{}), "", paths)
	if len(paths) < 50 {
		t.Fatalf("only %d setting paths found; the walk is broken", len(paths))
	}
	for _, p := range sortedSet(paths) {
		if !strings.Contains(doc, "| `"+p+"` |") {
			t.Errorf("docs/configuration.md has no table row for `%s`", p)
		}
	}
}

func TestExampleShowsEverySetting(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(Example(), &doc); err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	nodePaths(doc.Content[0], reflect.TypeOf(fileConfig{}), "", shown)
	paths := map[string]bool{}
	schemaPaths(reflect.TypeOf(fileConfig{}), "", paths)
	// Public and failed-authentication limits refuse plans (those
	// requests have no plan), so no valid file shows that key.
	delete(paths, "apis[].rate_limits.public.plans")
	delete(paths, "apis[].rate_limits.failed_auth.plans")
	for _, p := range sortedSet(paths) {
		if !shown[p] {
			t.Errorf("Example does not show %s", p)
		}
	}
}

func TestDocumentationEndsWithTheExample(t *testing.T) {
	doc := readDoc(t)
	const start = "## Full example\n"
	i := strings.Index(doc, start)
	if i < 0 {
		t.Fatal("docs/configuration.md has no \"## Full example\" section")
	}
	section := doc[i:]
	open := strings.Index(section, "```yaml\n")
	if open < 0 {
		t.Fatal("the Full example section has no ```yaml block")
	}
	block := section[open+len("```yaml\n"):]
	if !strings.HasSuffix(block, "```\n") {
		t.Fatal("the ```yaml block does not end the page")
	}
	block = strings.TrimSuffix(block, "```\n")
	if block != string(Example()) {
		t.Error("the Full example in docs/configuration.md differs from config/example.yaml; copy the file into the page")
	}
}

func TestDocumentationListsCustomDefaults(t *testing.T) {
	doc := readDoc(t)
	for code, r := range customResponses() {
		row := "| " + strconv.Itoa(r.Status) + " | `" + r.Body + "` |"
		if !strings.Contains(doc, "| `"+code+"` |") || !strings.Contains(doc, row) {
			t.Errorf("docs/configuration.md lacks the default response of %s: %s", code, row)
		}
	}
}
