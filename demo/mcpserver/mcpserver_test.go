package mcpserver_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/demo/mcpserver"
)

// The tests run the demo menus API and the MCP server on httptest servers
// and talk to them with the Go MCP SDK's client. The identity travels as
// JSON in X-Keygate-Identity, standing in for keygate's signed JWT.

func readIdentity(r *http.Request) (*keygate.Identity, error) {
	raw := r.Header.Get(keygate.HeaderIdentity)
	if raw == "" {
		return nil, errors.New("no identity")
	}
	var id keygate.Identity
	if err := json.Unmarshal([]byte(raw), &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// withIdentity adds the identity header to every request, as keygate does.
type withIdentity struct {
	id   *keygate.Identity
	next http.RoundTripper
}

func (t withIdentity) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := json.Marshal(t.id)
	r = r.Clone(r.Context())
	r.Header.Set(keygate.HeaderIdentity, string(b))
	return t.next.RoundTrip(r)
}

func newServer(t *testing.T) string {
	t.Helper()
	menus := httptest.NewServer(demo.MenusAPI(readIdentity))
	t.Cleanup(menus.Close)
	srv := httptest.NewServer(mcpserver.New(menus.URL, readIdentity))
	t.Cleanup(srv.Close)
	return srv.URL
}

func connect(t *testing.T, endpoint string, id *keygate.Identity) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1.0.0"}, nil)
	session, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: withIdentity{id: id, next: http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { session.Close() })
	return session
}

var acme = &keygate.Identity{
	OrganizationID: "org_acme", OrganizationSlug: "acme", Plan: "pro",
	Entitlements: keygate.Entitlements{States: []string{"California", "Oregon"}},
	Scopes:       []string{"products:read", "dispensaries:read"}, API: "cannmenus",
}

func callTool(t *testing.T, s *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("CallTool(%s): %v", name, err)
	}
	return res
}

func decode[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return out
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func TestTools(t *testing.T) {
	s := connect(t, newServer(t), acme)
	tools, err := s.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"list_dispensaries", "search_products"}) {
		t.Errorf("tools %v", names)
	}
}

func TestSearchProductsStaysWithinEntitlements(t *testing.T) {
	s := connect(t, newServer(t), acme)
	got := decode[mcpserver.ProductsPage](t, callTool(t, s, mcpserver.ToolSearchProducts, map[string]any{"per_page": 100}))
	if got.Total == 0 || len(got.Products) == 0 {
		t.Fatal("no products for an organization entitled to California and Oregon")
	}
	states := map[string]bool{}
	for page := 1; page <= got.TotalPages; page++ {
		p := decode[mcpserver.ProductsPage](t, callTool(t, s, mcpserver.ToolSearchProducts, map[string]any{"per_page": 100, "page": page}))
		for _, prod := range p.Products {
			states[prod.State] = true
		}
	}
	if len(states) != 2 || !states["California"] || !states["Oregon"] {
		t.Errorf("products came from %v, want exactly California and Oregon", states)
	}

	oregon := decode[mcpserver.ProductsPage](t, callTool(t, s, mcpserver.ToolSearchProducts, map[string]any{"states": []string{"Oregon"}, "page": 1}))
	for _, p := range oregon.Products {
		if p.State != "Oregon" {
			t.Errorf("search in Oregon returned a product in %s", p.State)
		}
	}
	if oregon.Page != 1 || oregon.PerPage != demo.DefaultPerPage {
		t.Errorf("page %d per_page %d, want 1 and %d", oregon.Page, oregon.PerPage, demo.DefaultPerPage)
	}
}

func TestSearchOutsideEntitlementsIsAToolError(t *testing.T) {
	s := connect(t, newServer(t), acme)
	res := callTool(t, s, mcpserver.ToolSearchProducts, map[string]any{"states": []string{"California", "New York"}})
	if !res.IsError || text(res) != "Your organization does not have access to state New York." {
		t.Errorf("IsError %v, text %q", res.IsError, text(res))
	}
	limited := *acme
	limited.Entitlements.Brands = []string{"Nowhere Brand"}
	s = connect(t, newServer(t), &limited)
	res = callTool(t, s, mcpserver.ToolSearchProducts, map[string]any{"brands": []string{"Other Brand"}})
	if !res.IsError || text(res) != "Your organization does not have access to brand Other Brand." {
		t.Errorf("IsError %v, text %q", res.IsError, text(res))
	}
}

func TestListDispensaries(t *testing.T) {
	s := connect(t, newServer(t), acme)
	got := decode[mcpserver.DispensariesPage](t, callTool(t, s, mcpserver.ToolListDispensaries, map[string]any{}))
	if got.Total == 0 {
		t.Fatal("no dispensaries")
	}
	for _, d := range got.Dispensaries {
		if d.State != "California" && d.State != "Oregon" {
			t.Errorf("dispensary %s in %s is outside the entitlements", d.Name, d.State)
		}
	}
	res := callTool(t, s, mcpserver.ToolListDispensaries, map[string]any{"states": []string{"Colorado"}})
	if !res.IsError || !strings.Contains(text(res), "state Colorado") {
		t.Errorf("Colorado: IsError %v, text %q", res.IsError, text(res))
	}
}

func TestRequestsWithoutIdentityAreRefused(t *testing.T) {
	endpoint := newServer(t)
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "forwarded by keygate") {
		t.Errorf("status %d, body %s", resp.StatusCode, body)
	}
}
