package config

import (
	"bytes"
	_ "embed"
)

//go:embed example.yaml
var example []byte

// Example returns a commented config file that shows every setting: an API
// on each built-in preset, shaped like the demo's, and one on a custom
// preset. It parses as is; docs/configuration.md ends with it.
func Example() []byte {
	return bytes.Clone(example)
}
