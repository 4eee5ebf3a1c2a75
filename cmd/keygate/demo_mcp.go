//go:build !nodemomcp

package main

import (
	"net/http"

	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/demo/mcpserver"
)

// demoMCPServer is the demo's MCP upstream. Release and image builds set
// the nodemomcp tag to leave it, and the MCP SDK it pulls in, out of the
// binary people deploy.
func demoMCPServer(menusURL string, identity demo.IdentityReader) http.Handler {
	return mcpserver.New(menusURL, identity)
}
