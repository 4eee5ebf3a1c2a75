// Package mcpserver is the demo MCP server that `keygate demo` puts behind
// keygate's MCP endpoint: a streamable HTTP server (the official Go MCP
// SDK) whose tools search the demo menus API.
//
// Like the demo APIs it is an upstream: keygate has already checked the
// client's OAuth token (or API token) and forwards the request with its
// identity headers, never the client's token. The server learns who is
// calling only from that identity, refuses requests without one, refuses
// tool arguments outside the organization's entitlements with the same
// words the gateway uses, and calls the menus API with the same identity
// headers, so the menus API filters by the same entitlements again.
//
// The server is stateless: every request carries its own identity (the
// identity JWT lives a minute), so no MCP session may outlive it.
package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo"
)

// Names of the tools.
const (
	ToolSearchProducts   = "search_products"
	ToolListDispensaries = "list_dispensaries"
)

// IdentityReader returns the identity keygate verified for a request, from
// its identity headers; an error when there is none or it does not verify.
type IdentityReader = func(r *http.Request) (*keygate.Identity, error)

// New returns the demo MCP server. menusURL is the base URL of the demo
// menus API (demo.MenusAPI), e.g. "http://127.0.0.1:9080"; identity reads
// the identity keygate forwards (in `keygate demo`, the verifier of the
// signed X-Keygate-Identity header).
func New(menusURL string, identity IdentityReader) http.Handler {
	m := &menus{
		base:     strings.TrimSuffix(menusURL, "/"),
		client:   &http.Client{Timeout: 10 * time.Second},
		identity: identity,
	}
	server := mcp.NewServer(&mcp.Implementation{
		Name:    "keygate-demo-menus",
		Title:   "keygate demo: cannabis menus",
		Version: "1.0.0",
	}, &mcp.ServerOptions{
		Instructions: "Search the products and dispensaries your organization may see. " +
			"Results only ever cover the states, brands and dispensaries your organization is entitled to.",
	})
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)}
	mcp.AddTool(server, &mcp.Tool{
		Name:        ToolSearchProducts,
		Title:       "Search products",
		Description: "Search dispensary menus for products, optionally in some states or of some brands, one page at a time.",
		Annotations: readOnly,
	}, m.searchProducts)
	mcp.AddTool(server, &mcp.Tool{
		Name:        ToolListDispensaries,
		Title:       "List dispensaries",
		Description: "List dispensaries with their city, state and number of products, optionally in some states.",
		Annotations: readOnly,
	}, m.listDispensaries)

	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{
		Stateless: true,
		// keygate proxies to this server, usually on a loopback address,
		// with the public Host header; the SDK's DNS-rebinding guard would
		// refuse that. Every request needs keygate's verified identity,
		// which a rebinding page cannot have.
		DisableLocalhostProtection: true,
	})
	return requireIdentity(identity, handler)
}

// requireIdentity refuses requests that did not come through keygate, and
// hands the identity to the tools.
func requireIdentity(read IdentityReader, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := read(r)
		if err != nil || id == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"unauthorized","error_description":"This MCP server answers only requests forwarded by keygate."}`+"\n")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, &caller{id: id, header: identityHeaders(r.Header)})))
	})
}

type callerKey struct{}

// caller is who a request acts for and the headers that prove it, which
// the tools pass on to the menus API.
type caller struct {
	id     *keygate.Identity
	header http.Header
}

// identityHeaders keeps keygate's identity headers of a request.
func identityHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), keygate.HeaderPrefix) {
			out[k] = v
		}
	}
	return out
}

// callerOf returns the caller of a tool call: the one requireIdentity
// found, when the SDK runs the tool under the HTTP request's context, or
// else the identity in the request headers the SDK hands the tool, checked
// the same way.
func (m *menus) callerOf(ctx context.Context, req *mcp.CallToolRequest) (*caller, error) {
	if c, ok := ctx.Value(callerKey{}).(*caller); ok {
		return c, nil
	}
	if req != nil && req.Extra != nil && req.Extra.Header != nil {
		r := (&http.Request{Header: req.Extra.Header}).WithContext(ctx)
		if id, err := m.identity(r); err == nil && id != nil {
			return &caller{id: id, header: identityHeaders(req.Extra.Header)}, nil
		}
	}
	return nil, fmt.Errorf("mcpserver: no verified identity for this call")
}

// SearchProductsInput are the arguments of search_products.
type SearchProductsInput struct {
	States  []string `json:"states,omitempty" jsonschema:"US states to search in, e.g. California; all your organization may see when omitted"`
	Brands  []string `json:"brands,omitempty" jsonschema:"brands to keep, e.g. Sunny Farms; all when omitted"`
	Page    int      `json:"page,omitempty" jsonschema:"page number, from 1"`
	PerPage int      `json:"per_page,omitempty" jsonschema:"products per page, 1 to 100 (default 25)"`
}

// ProductsPage is what search_products returns.
type ProductsPage struct {
	Products   []demo.Product `json:"products"`
	Page       int            `json:"page"`
	PerPage    int            `json:"per_page"`
	Total      int            `json:"total"`
	TotalPages int            `json:"total_pages"`
}

// ListDispensariesInput are the arguments of list_dispensaries.
type ListDispensariesInput struct {
	States []string `json:"states,omitempty" jsonschema:"US states to list, e.g. Oregon; all your organization may see when omitted"`
	Page   int      `json:"page,omitempty" jsonschema:"page number, from 1"`
}

// DispensariesPage is what list_dispensaries returns.
type DispensariesPage struct {
	Dispensaries []demo.DispensarySummary `json:"dispensaries"`
	Page         int                      `json:"page"`
	PerPage      int                      `json:"per_page"`
	Total        int                      `json:"total"`
	TotalPages   int                      `json:"total_pages"`
}

// menus calls the demo menus API as the caller.
type menus struct {
	base     string
	client   *http.Client
	identity IdentityReader
}

// page is the menus API's list envelope.
type page[T any] struct {
	Data       []T `json:"data"`
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Total      int `json:"total"`
	TotalPages int `json:"total_pages"`
}

func (m *menus) searchProducts(ctx context.Context, req *mcp.CallToolRequest, in SearchProductsInput) (*mcp.CallToolResult, ProductsPage, error) {
	c, err := m.callerOf(ctx, req)
	if err != nil {
		return nil, ProductsPage{}, err
	}
	if refusal := outsideEntitlements(c.id, keygate.EntitlementStates, in.States); refusal != nil {
		return refusal, ProductsPage{}, nil
	}
	if refusal := outsideEntitlements(c.id, keygate.EntitlementBrands, in.Brands); refusal != nil {
		return refusal, ProductsPage{}, nil
	}
	q := url.Values{}
	setList(q, "states", in.States)
	setList(q, "brands", in.Brands)
	setInt(q, "page", in.Page)
	setInt(q, "per_page", in.PerPage)
	var p page[demo.Product]
	if refusal, err := m.get(ctx, c, "/v2/products", q, &p); refusal != nil || err != nil {
		return refusal, ProductsPage{}, err
	}
	return nil, ProductsPage{Products: nonNil(p.Data), Page: p.Page, PerPage: p.PerPage, Total: p.Total, TotalPages: p.TotalPages}, nil
}

func (m *menus) listDispensaries(ctx context.Context, req *mcp.CallToolRequest, in ListDispensariesInput) (*mcp.CallToolResult, DispensariesPage, error) {
	c, err := m.callerOf(ctx, req)
	if err != nil {
		return nil, DispensariesPage{}, err
	}
	if refusal := outsideEntitlements(c.id, keygate.EntitlementStates, in.States); refusal != nil {
		return refusal, DispensariesPage{}, nil
	}
	q := url.Values{}
	setList(q, "states", in.States)
	setInt(q, "page", in.Page)
	var p page[demo.DispensarySummary]
	if refusal, err := m.get(ctx, c, "/v2/dispensaries", q, &p); refusal != nil || err != nil {
		return refusal, DispensariesPage{}, err
	}
	return nil, DispensariesPage{Dispensaries: nonNil(p.Data), Page: p.Page, PerPage: p.PerPage, Total: p.Total, TotalPages: p.TotalPages}, nil
}

// outsideEntitlements returns a tool error for the first value the
// organization may not ask for, in the gateway's words.
func outsideEntitlements(id *keygate.Identity, kind string, values []string) *mcp.CallToolResult {
	for _, v := range values {
		if !id.Entitlements.Allows(kind, v) {
			return toolError(fmt.Sprintf("Your organization does not have access to %s %s.", keygate.EntitlementNoun(kind), v))
		}
	}
	return nil
}

// get calls the menus API with the caller's identity headers and decodes
// the answer. A refusal by the API becomes a tool error the model can read.
func (m *menus) get(ctx context.Context, c *caller, path string, q url.Values, into any) (*mcp.CallToolResult, error) {
	u := m.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return toolError("The menus API could not be reached; try again."), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return toolError("The menus API answer could not be read; try again."), nil
	}
	if resp.StatusCode != http.StatusOK {
		return toolError(fmt.Sprintf("The menus API refused the request (HTTP %d): %s", resp.StatusCode, strings.TrimSpace(string(body)))), nil
	}
	if err := json.Unmarshal(body, into); err != nil {
		return nil, fmt.Errorf("mcpserver: menus API answer: %w", err)
	}
	return nil, nil
}

func toolError(message string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: message}}}
}

func setList(q url.Values, name string, values []string) {
	var kept []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			kept = append(kept, v)
		}
	}
	if len(kept) > 0 {
		q.Set(name, strings.Join(kept, ","))
	}
}

func setInt(q url.Values, name string, n int) {
	if n != 0 {
		q.Set(name, strconv.Itoa(n))
	}
}

// nonNil keeps empty lists as [] in the structured output.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
