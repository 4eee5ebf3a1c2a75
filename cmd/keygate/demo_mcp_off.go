//go:build nodemomcp

package main

import (
	"net/http"

	"github.com/keygate/keygate/demo"
)

// demoMCPServer stands in for the demo MCP server in builds made with the
// nodemomcp tag: the demo's /mcp endpoint then says the server is not in
// this build instead of serving tools.
func demoMCPServer(string, demo.IdentityReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the demo MCP server is not in this build (built with -tags nodemomcp)", http.StatusNotImplemented)
	})
}
