package config

import (
	"os"
	"slices"
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

func TestDocumentationNamesEverySetting(t *testing.T) {
	doc := readDoc(t)
	paths := SettingPaths()
	if len(paths) < 50 {
		t.Fatalf("only %d setting paths found; the walk is broken", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(doc, "| `"+p+"` |") {
			t.Errorf("docs/configuration.md has no table row for `%s`", p)
		}
	}
}

func TestExampleShowsEverySetting(t *testing.T) {
	missing, err := MissingSettings(Example())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range missing {
		t.Errorf("Example does not show %s", p)
	}
}

// A file that shows a few settings is missing all the others, nested and
// in list items too, but never one no valid file can hold.
func TestMissingSettingsNamesWhatAFileLeavesOut(t *testing.T) {
	missing, err := MissingSettings([]byte("log: {level: info}\napis:\n  - name: a\n    routes: [{path: /}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"log.level": false, "apis[].name": false, "apis[].routes[].path": false,
		"log.format": true, "listeners.shutdown_grace": true, "apis[].routes[].access": true,
		"apis[].custom_preset.responses.<code>.status": true,
		"apis[].rate_limits.public.plans":              false,
	} {
		if slices.Contains(missing, p) != want {
			t.Errorf("%s missing: %v, want %v", p, !want, want)
		}
	}
	if _, err := MissingSettings([]byte("log: [")); err == nil {
		t.Error("a file that is not YAML gave no error")
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

// Cut at every top-level key, example.yaml falls apart into its header and
// the sections keygate init and keygate demo borrow, nothing lost or doubled.
func TestExampleSectionsCutAtTopLevelKeys(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(Example(), &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	top := doc.Content[0].Content
	for i := 0; i < len(top); i += 2 {
		keys = append(keys, top[i].Value)
	}
	sections, err := ExampleSections(keys...)
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(Example()), "\n\n")
	if got := header + "\n\n" + sections; got != string(Example()) {
		t.Errorf("the sections of all %d keys are not the example:\n%s", len(keys), got)
	}
	if _, err := ExampleSections("log", "listener"); err == nil || !strings.Contains(err.Error(), `"listener"`) {
		t.Errorf("an unknown section: %v", err)
	}
}
