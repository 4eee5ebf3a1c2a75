// Package mcp holds keygate's end-to-end tests with real MCP clients: the
// official TypeScript MCP SDK (client.mjs) and the MCP conformance suite's
// authorization checks, run by Node.js from the npm packages pinned in
// package.json and package-lock.json (`npm ci` here installs them), and
// golang.org/x/oauth2. They assemble keygate from its real parts.
package mcp
