package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo"
)

// mcpClientDir is where the TypeScript MCP SDK client of the end-to-end
// tests lives, with its npm packages.
var mcpClientDir = filepath.Join("..", "..", "e2e", "mcp")

// The official TypeScript MCP SDK client (e2e/mcp/client.mjs) against a
// started `keygate demo`: it finds the MCP endpoint printed in the banner
// protected, registers itself, logs in as the demo user, approves for the
// demo organization and sees products from its states only.
func TestDemoMCPEndpointWithTypeScriptSDK(t *testing.T) {
	node := requireMCPClient(t)
	d := startTestDemo(t, t.TempDir())
	ctx := t.Context()
	org, err := d.Server.Store().FindOrganizationBySlug(ctx, demo.DemoOrgSlug)
	if err != nil {
		t.Fatal(err)
	}
	mcpURL := d.Env["CANNMENUS_BASE_URL"] + "/mcp"

	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, node, "client.mjs", mcpURL)
	cmd.Dir = mcpClientDir
	cmd.Env = append(os.Environ(),
		"KEYGATE_EMAIL="+demo.DemoEmail, "KEYGATE_PASSWORD="+demo.DemoPassword, "KEYGATE_ORGANIZATION="+org.ID)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	var r struct {
		ClientID    string   `json:"client_id"`
		Resource    string   `json:"resource"`
		Iss         string   `json:"iss"`
		TokenPrefix string   `json:"token_prefix"`
		Tools       []string `json:"tools"`
		States      []string `json:"states"`
		Total       int      `json:"total"`
		Refusal     struct {
			IsError bool   `json:"is_error"`
			Text    string `json:"text"`
		} `json:"refusal"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("client.mjs output %q: %v\nstderr:\n%s", stdout.String(), err, stderr.String())
	}
	t.Logf("client.mjs reported %s", stdout.String())

	if r.Iss != d.Env["KEYGATE_URL"] || r.Resource != mcpURL {
		t.Errorf("iss %q, resource %q; want %q, %q", r.Iss, r.Resource, d.Env["KEYGATE_URL"], mcpURL)
	}
	if !strings.HasPrefix(r.ClientID, "kgc_") || r.TokenPrefix != "kgo_at_" {
		t.Errorf("client_id %q, token prefix %q; want a registered kgc_ client and a kgo_at_ token", r.ClientID, r.TokenPrefix)
	}
	if !slices.Equal(r.Tools, []string{"list_dispensaries", "search_products"}) {
		t.Errorf("tools %v", r.Tools)
	}
	if !slices.Equal(r.States, demo.DemoStates) || r.Total == 0 {
		t.Errorf("search_products saw states %v (%d products), want exactly %v", r.States, r.Total, demo.DemoStates)
	}
	if !r.Refusal.IsError || r.Refusal.Text != "Your organization does not have access to state New York." {
		t.Errorf("search in New York: %+v, want the entitlement refusal", r.Refusal)
	}
	grants, err := d.Server.Store().ListOAuthGrants(ctx, keygate.OAuthGrantFilter{OrganizationID: org.ID})
	if err != nil || len(grants) != 1 || grants[0].ClientID != r.ClientID {
		t.Errorf("grants %+v (%v), want one for the client and the demo organization", grants, err)
	}
}

// requireMCPClient returns the node binary when e2e/mcp's npm packages are
// installed: skipped locally without them, a failure in CI (CI set).
func requireMCPClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(mcpClientDir, "node_modules", "@modelcontextprotocol", "sdk", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and e2e/mcp/node_modules are required in CI (run `npm ci` in e2e/mcp): %v", err)
		}
		t.Skipf("skipping: node or e2e/mcp/node_modules missing (run `npm ci` in e2e/mcp): %v", err)
	}
	return node
}
