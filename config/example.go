package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
)

//go:embed example.yaml
var example []byte

// Example returns a commented config file that shows every setting: an API
// on each built-in preset, shaped like the demo's, and one on a custom
// preset. It parses as is; docs/configuration.md ends with it.
func Example() []byte {
	return bytes.Clone(example)
}

// ExampleSections returns top-level settings of Example, each with the
// comment above it, separated by blank lines: the files keygate writes
// (keygate init, keygate demo) show the settings whose values they do not
// choose in the same words, so the explanations cannot drift apart.
func ExampleSections(keys ...string) (string, error) {
	lines := strings.Split(string(example), "\n")
	sections := make([]string, 0, len(keys))
	for _, key := range keys {
		s, ok := exampleSection(lines, key)
		if !ok {
			return "", fmt.Errorf("config: example.yaml has no top-level setting %q", key)
		}
		sections = append(sections, s)
	}
	return strings.Join(sections, "\n\n") + "\n", nil
}

// exampleSection cuts one top-level setting out of example.yaml's lines:
// the comment lines right above its key, the key, and every indented or
// blank line below it, without the blank lines at its end.
func exampleSection(lines []string, key string) (string, bool) {
	at := -1
	for i, line := range lines {
		if strings.HasPrefix(line, key+":") {
			at = i
			break
		}
	}
	if at < 0 {
		return "", false
	}
	start := at
	for start > 0 && strings.HasPrefix(lines[start-1], "#") {
		start--
	}
	end := at + 1
	for end < len(lines) && (lines[end] == "" || strings.HasPrefix(lines[end], " ")) {
		end++
	}
	for lines[end-1] == "" {
		end--
	}
	return strings.Join(lines[start:end], "\n"), true
}
