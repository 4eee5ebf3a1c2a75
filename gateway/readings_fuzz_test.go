package gateway_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
)

// FuzzRouteReadings: for any path, a request the gateway lets through
// without a token is one that no lenient reading of the path (case
// folded, ";" parameters cut, trailing dots and spaces trimmed, "\" for
// "/", cut at "#", a trailing slash dropped or added, or all of them)
// takes to a token route or to the MCP endpoint mounted ahead of the
// routes. The readings are spelled out here on their own,
// against the token routes' paths, not through the gateway's route table.
func FuzzRouteReadings(f *testing.F) {
	for _, p := range []string{"/v1/x", "/v1/SECRET", "/v1/secret;a", "/docs/admin/", "/docs/Internal", "/v1/secret.", "/v1/a\\..\\secret", "/v1/secret#x", "/docs/x", "/docs/ADMIN;x./", "/MCP", "/mcp;x", "/Mcp/sse", "/mcp."} {
		f.Add(p)
	}
	api := &keygate.API{
		Name: "readings", Preset: eventsAPI("http://127.0.0.1:1").Preset, Upstream: "http://127.0.0.1:1",
		Tokens: keygate.TokenPolicy{BasePrefix: "rd_", Scopes: []string{"a"}},
		Routes: []keygate.Route{
			{Methods: []string{"GET"}, Path: "/v1/{name}", Access: keygate.AccessPublic},
			{Methods: []string{"GET"}, Path: "/v1/secret", Access: keygate.AccessToken},
			{Methods: []string{"GET"}, Path: "/docs/", Access: keygate.AccessPublic},
			{Methods: []string{"GET"}, Path: "/docs/admin", Access: keygate.AccessToken},
			{Methods: []string{"GET"}, Path: "/docs/Internal/", Access: keygate.AccessToken},
			{Methods: []string{"GET"}, Path: "/", Access: keygate.AccessPublic},
		},
	}
	gw, err := gateway.New(gateway.Config{API: api})
	if err != nil {
		f.Fatal(err)
	}
	// The MCP endpoint, served ahead of the routes.
	gw.Mount("/mcp", http.NotFoundHandler())
	gw.Mount("/mcp/", http.NotFoundHandler())
	// tokenRoute reports whether a case-folding upstream serves p from a
	// token route or the MCP endpoint.
	tokenRoute := func(p string) bool {
		c := path.Clean(p)
		if strings.HasSuffix(p, "/") && c != "/" {
			c += "/"
		}
		c = strings.ToLower(c)
		return c == "/v1/secret" || c == "/docs/admin" || strings.HasPrefix(c, "/docs/internal/") ||
			c == "/mcp" || strings.HasPrefix(c, "/mcp/")
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") || len(p) > 512 {
			t.Skip()
		}
		d, err := gw.Authorize(context.Background(), gateway.Request{Method: "GET", URL: &url.URL{Path: p}, ClientIP: netip.MustParseAddr("203.0.113.9")})
		if err != nil {
			return // refused: nothing reached the upstream
		}
		if d.Route.Access != keygate.AccessPublic {
			t.Fatalf("%q: a token route passed without a token", p)
		}
		cut, _, _ := strings.Cut(p, "#")
		segs := strings.Split(strings.ReplaceAll(cut, `\`, "/"), "/")
		for i, s := range segs {
			s, _, _ = strings.Cut(s, ";")
			segs[i] = strings.TrimRight(s, ". ")
		}
		all := strings.Join(segs, "/")
		for _, r := range []string{p, cut, all, strings.TrimSuffix(all, "/"), all + "/"} {
			if tokenRoute(r) {
				t.Fatalf("%q passed as public route %s, but reads as token route or MCP %q", p, d.Route.Path, r)
			}
		}
	})
}
