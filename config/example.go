package config

import (
	"bytes"
	_ "embed"
)

//go:embed example.yaml
var example []byte

// Example returns a commented config file that shows every setting: the
// two built-in presets' APIs as keygate demo runs them, and a custom one.
// It parses as is.
func Example() []byte {
	return bytes.Clone(example)
}
