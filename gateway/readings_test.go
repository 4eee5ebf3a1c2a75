package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
)

// rawExchange sends req as it is on a new connection to addr and returns
// the status line and the body of the answer.
func rawExchange(t *testing.T, addr, req string) (status, body string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	status, _, _ = strings.Cut(head, "\r\n")
	return status, body
}

// pathsUpstream records the request targets it is asked for.
type pathsUpstream struct {
	mu   sync.Mutex
	seen []string
}

func (p *pathsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.RequestURI)
	p.mu.Unlock()
	_, _ = io.WriteString(w, "upstream")
}

func (p *pathsUpstream) saw(target string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.seen {
		if strings.HasSuffix(s, " "+target) {
			return true
		}
	}
	return false
}

// pathsGateway is eventsGateway in front of a pathsUpstream, which closes
// with the test.
func pathsGateway(t *testing.T, routes ...keygate.Route) (*gateway.Gateway, *pathsUpstream) {
	t.Helper()
	up := &pathsUpstream{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	return eventsGateway(t, upstream.URL, routes...), up
}

// eventsGateway is a gateway for the events API at upstream, without rate
// limits, with routes added.
func eventsGateway(t *testing.T, upstream string, routes ...keygate.Route) *gateway.Gateway {
	t.Helper()
	f := newFixture(t)
	api := eventsAPI(upstream)
	api.PublicRateLimit, api.TokenRateLimit, api.FailedAuthRateLimit = nil, nil, nil
	api.Routes = append(api.Routes, routes...)
	gw, err := gateway.New(gateway.Config{API: api, Tokens: f.tokens, Signer: f.signer})
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// A public wildcard or subtree route beside a token route: a path Go
// matches to the public route, but that a lenient upstream framework
// reads as the token route (Express and ASP.NET fold case, Tomcat and
// Spring drop ";" parameters, Express ignores a trailing slash, IIS trims
// trailing dots and takes "\" for "/", C code stops at NUL), is the
// preset's 404 on the proxy and on forward-auth, and never reaches the
// upstream without a token.
func TestPathsALenientUpstreamReadsAsATokenRouteAreNotFound(t *testing.T) {
	gw, up := pathsGateway(t,
		keygate.Route{Methods: []string{"GET"}, Path: "/v1/{name}", Access: keygate.AccessPublic},
		keygate.Route{Methods: []string{"GET"}, Path: "/v1/secret", Access: keygate.AccessToken, Scopes: []string{"attendees:read"}},
		keygate.Route{Methods: []string{"GET"}, Path: "/docs/", Access: keygate.AccessPublic},
		keygate.Route{Methods: []string{"GET"}, Path: "/docs/admin", Access: keygate.AccessToken, Scopes: []string{"webhooks:manage"}},
		keygate.Route{Methods: []string{"GET"}, Path: "/docs/Internal/", Access: keygate.AccessToken, Scopes: []string{"webhooks:manage"}},
	)
	addr := newRawServer(t, gw)
	const notFound = `{"message": "Not Found."}`

	for _, target := range []string{
		"/v1/SECRET",            // case folded
		"/V1/Secret",            // case folded
		"/v1/secret;jsessionid", // ";" parameter dropped
		"/v1;x/secret",          // ";" parameter dropped from an earlier segment
		"/v1/secret.",           // trailing dot trimmed
		"/v1/secret%20",         // trailing space trimmed
		"/v1/secret%00",         // NUL ends the path
		"/v1/secret%09",         // a control byte
		"/v1/x%5C..%5Csecret",   // "\" read as "/"
		"/docs/admin/",          // trailing slash dropped
		"/docs/Admin;a/",        // all of them at once
		"/docs/internal",        // case folded, slash added: /docs/Internal/
		"/v1/secret%23x",        // a fragment, as nginx passes it on raw
	} {
		status, body := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 404 Not Found" || body != notFound {
			t.Errorf("proxy GET %s: %s %q, want 404 %q", target, status, body, notFound)
		}
		if up.saw(target) {
			t.Errorf("proxy GET %s reached the upstream", target)
		}
		status, body = rawExchange(t, addr, "GET /_keygate/auth HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: "+target+"\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 404 Not Found" || body != notFound {
			t.Errorf("forward-auth %s: %s %q, want 404 %q", target, status, body, notFound)
		}
	}

	// nginx hands forward-auth $request_uri as the client sent it, a raw
	// fragment included, and routes on the path before it.
	for _, target := range []string{"/v1/secret#x", "/v1/SECRET#x", "/docs/admin#/../x"} {
		status, body := rawExchange(t, addr, "GET /_keygate/auth HTTP/1.1\r\nHost: api.example\r\nX-Original-Method: GET\r\nX-Original-URI: "+target+"\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 404 Not Found" || body != notFound {
			t.Errorf("forward-auth %s: %s %q, want 404 %q", target, status, body, notFound)
		}
	}
	status, _ := rawExchange(t, addr, "GET /_keygate/auth HTTP/1.1\r\nHost: api.example\r\nX-Original-URI: /p/abc#top\r\nConnection: close\r\n\r\n")
	if status != "HTTP/1.1 200 OK" {
		t.Errorf("forward-auth /p/abc#top: %s, want 200", status)
	}

	// Paths that every reading takes to the public route still pass, and
	// the token route itself still asks for a token.
	for _, target := range []string{"/v1/products", "/v1/Products", "/v1/secretary", "/v1/a;b", "/docs/guide/", "/docs/Guide.md", "/p/abc"} {
		status, body := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 200 OK" || body != "upstream" || !up.saw(target) {
			t.Errorf("proxy GET %s: %s %q, want the upstream's 200", target, status, body)
		}
	}
	for _, target := range []string{"/v1/secret", "/docs/admin", "/docs/Internal/x"} {
		status, body := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
		if want := `{"message": "API token required."}`; status != "HTTP/1.1 401 Unauthorized" || body != want {
			t.Errorf("proxy GET %s: %s %q, want 401 %q", target, status, body, want)
		}
	}
}

// The MCP endpoint is mounted ahead of the routes and asks for OAuth. A
// path that a lenient upstream reads as the mount's ("/MCP", "/mcp;x",
// "/mcp.") is not the mount's for Go, so it would fall through to a public
// catch-all route and reach an upstream that serves /mcp without OAuth:
// it is the preset's 404 instead, as a path that reads as another token
// route is. Forward-auth, which never serves the mount, refuses the
// mount's own paths too.
func TestPathsALenientUpstreamReadsAsTheMCPMountAreNotFound(t *testing.T) {
	gw, up := pathsGateway(t, keygate.Route{Methods: []string{"GET", "POST"}, Path: "/", Access: keygate.AccessPublic})
	mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "mcp") })
	gw.Mount("/mcp", mcp)
	gw.Mount("/mcp/", mcp)
	addr := newRawServer(t, gw)
	const notFound = `{"message": "Not Found."}`

	for _, target := range []string{
		"/MCP",             // case folded
		"/Mcp/",            // case folded, into the subtree
		"/MCP/sse",         // case folded, into the subtree
		"/mcp;jsessionid",  // ";" parameter dropped
		"/mcp;x/",          // ";" parameter dropped, into the subtree
		"/mcp.",            // trailing dot trimmed
		"/mcp%20",          // trailing space trimmed
		"/mcp.;x/messages", // all of them at once
		"/x%5C..%5Cmcp",    // "\" read as "/"
		"/mcp%23x",         // a fragment, as nginx passes it on raw
		"/mcp%00",          // NUL ends the path
	} {
		for _, method := range []string{"GET", "POST"} {
			status, body := rawExchange(t, addr, method+" "+target+" HTTP/1.1\r\nHost: api.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			if status != "HTTP/1.1 404 Not Found" || body != notFound {
				t.Errorf("proxy %s %s: %s %q, want 404 %q", method, target, status, body, notFound)
			}
		}
		if up.saw(target) {
			t.Errorf("proxy %s reached the upstream", target)
		}
	}
	for _, target := range []string{"/mcp", "/mcp/", "/mcp/sse", "/MCP", "/mcp;x", "/mcp.", "/Mcp/sse", "/mcp#x", "/MCP#x"} {
		status, body := rawExchange(t, addr, "POST /_keygate/auth HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: "+target+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 404 Not Found" || body != notFound {
			t.Errorf("forward-auth %s: %s %q, want 404 %q", target, status, body, notFound)
		}
	}

	// The mount still serves its own paths, and paths no reading takes
	// there still reach the catch-all route.
	for _, target := range []string{"/mcp", "/mcp/", "/mcp/sse"} {
		status, body := rawExchange(t, addr, "POST "+target+" HTTP/1.1\r\nHost: api.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 200 OK" || body != "mcp" {
			t.Errorf("proxy POST %s: %s %q, want the mount's 200", target, status, body)
		}
	}
	for _, target := range []string{"/mcpx", "/mcp-docs/", "/docs/mcp", "/v1/MCP", "/m;cp"} {
		status, body := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 200 OK" || body != "upstream" || !up.saw(target) {
			t.Errorf("proxy GET %s: %s %q, want the upstream's 200", target, status, body)
		}
		status, _ = rawExchange(t, addr, "GET /_keygate/auth HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: "+target+"\r\nConnection: close\r\n\r\n")
		if status != "HTTP/1.1 200 OK" {
			t.Errorf("forward-auth %s: %s, want 200", target, status)
		}
	}
}
