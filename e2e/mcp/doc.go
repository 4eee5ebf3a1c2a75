// Package mcp holds keygate's end-to-end tests with real MCP clients: the
// official TypeScript MCP SDK (client.mjs) and the MCP conformance suite's
// authorization checks, run by Node.js from the npm packages pinned in
// package.json and package-lock.json (`npm ci` here installs them), the
// official Go MCP SDK client, and golang.org/x/oauth2. They run against
// keygate started as `keygate serve` starts it: a YAML config through
// config.Parse, server.New and Start, with the demo APIs and the demo MCP
// server as upstreams. One keygate serves every test.
package mcp
