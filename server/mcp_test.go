package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// menusMCP is keygate running one cannmenus API whose MCP endpoint takes
// API tokens, with a recording MCP upstream behind it.
type menusMCP struct {
	srv      *server.Server
	api      string // http://host:port of the API listener
	upstream *recorder
	org      *keygate.Organization
}

// recorder is an upstream that remembers every request it served.
type recorder struct {
	mu   sync.Mutex
	seen []*http.Request
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.seen = append(rec.seen, r.Clone(context.Background()))
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

func startMenusMCP(t *testing.T, extra string) *menusMCP {
	t.Helper()
	up := &recorder{}
	upstreamServer := httptest.NewServer(up)
	t.Cleanup(upstreamServer.Close)
	upstream := upstreamServer.URL
	addr, admin := freeAddr(t), freeAddr(t)
	srv := runServer(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
`+extra+`
apis:
  - name: menus
    preset: cannmenus
    listen: `+addr+`
    upstream: `+upstream+`
    token_prefix: cm_
    scopes: [products:read, brands:read, dispensaries:read]
    mcp:
      upstream: `+upstream+`/mcp
      scopes: [products:read, dispensaries:read]
      allow_api_tokens: true
    routes:
      - {methods: [GET], path: /v2/products, access: token, scopes: [products:read]}
      - {methods: [GET], path: /v2/brands, access: token, scopes: [brands:read]}
`, server.Options{Logger: quietLogger()})
	m := &menusMCP{srv: srv, api: "http://" + addr, upstream: up,
		org: &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}}
	if err := manage.CreateOrganization(context.Background(), srv.Store(), m.org, time.Now()); err != nil {
		t.Fatal(err)
	}
	return m
}

// token creates a token on the menus API with scopes, created at created.
func (m *menusMCP) token(t *testing.T, scopes []string, expiry keygate.ExpiryChoice, created time.Time) string {
	t.Helper()
	_, secret, err := manage.CreateToken(context.Background(), m.srv.Store(), m.srv.APIs()[0], m.org,
		keygate.TokenRequest{Name: "t", Scopes: scopes, Expiry: expiry}, created)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

type reply struct {
	status int
	header http.Header
	body   string
}

// send makes one real HTTP request; header lists name, value pairs.
func send(t *testing.T, method, url, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

const searchProducts = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_products","arguments":{}}}`

func (m *menusMCP) metadataURL() string { return m.api + "/.well-known/oauth-protected-resource/mcp" }

// An API token on the MCP endpoint needs every scope of mcp.scopes, as an
// OAuth token does: a token that may not read products on /v2/products
// may not search them through a tool either.
func TestMCPRefusesAnAPITokenWithoutTheEndpointScopes(t *testing.T) {
	m := startMenusMCP(t, "")
	brands := m.token(t, []string{"brands:read"}, keygate.Expiry90Days, time.Now())

	if r := send(t, "GET", m.api+"/v2/products", "", "X-Token", brands); r.status != 403 || r.body != `{"detail": "Token does not have access to this endpoint."}` {
		t.Fatalf("REST: %d %s", r.status, r.body)
	}
	r := send(t, "POST", m.api+"/mcp", searchProducts, "X-Token", brands, "Content-Type", "application/json")
	wantChallenge := `Bearer error="insufficient_scope", scope="products:read dispensaries:read", resource_metadata="` + m.metadataURL() +
		`", error_description="This MCP endpoint needs the scopes products:read dispensaries:read."`
	if r.status != 403 || r.header.Get("WWW-Authenticate") != wantChallenge ||
		r.body != `{"error":"insufficient_scope","error_description":"This MCP endpoint needs the scopes products:read dispensaries:read."}`+"\n" {
		t.Errorf("MCP: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	if n := m.upstream.count(); n != 0 {
		t.Errorf("the MCP upstream served %d requests for a token without the scopes", n)
	}
	full := m.token(t, []string{"products:read", "dispensaries:read"}, keygate.Expiry90Days, time.Now())
	if r := send(t, "POST", m.api+"/mcp", searchProducts, "X-Token", full, "Content-Type", "application/json"); r.status != 200 {
		t.Errorf("token with the scopes: %d %s", r.status, r.body)
	}
}

// cannmenus answers an expired token exactly like an unknown one (404 Not
// Found), so the MCP endpoint must not tell them apart either.
func TestMCPAnswersExpiredLikeInvalidWhereThePresetDoes(t *testing.T) {
	m := startMenusMCP(t, "")
	expired := m.token(t, []string{"products:read", "dispensaries:read"}, keygate.Expiry7Days, time.Now().Add(-8*24*time.Hour))
	unknown := keygate.GenerateTokenSecret("cm_live_")
	for _, secret := range []string{expired, unknown} {
		if r := send(t, "GET", m.api+"/v2/products", "", "X-Token", secret); r.status != 404 || r.body != `{"detail": "Not Found"}` {
			t.Errorf("REST: %d %s", r.status, r.body)
		}
	}
	want := `Bearer error="invalid_token", scope="products:read dispensaries:read", resource_metadata="` + m.metadataURL() +
		`", error_description="Invalid API token."`
	for name, secret := range map[string]string{"expired": expired, "unknown": unknown} {
		r := send(t, "POST", m.api+"/mcp", searchProducts, "X-Token", secret, "Content-Type", "application/json")
		if r.status != 401 || r.header.Get("WWW-Authenticate") != want ||
			r.body != `{"error":"invalid_token","error_description":"Invalid API token."}`+"\n" {
			t.Errorf("%s token on MCP: %d %q %s", name, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
	}
}

// Under /mcp/ only clean paths pass, as on routes: the path keygate
// checked is the path the MCP server gets.
func TestMCPRefusesUncleanPathsInThePresetShape(t *testing.T) {
	m := startMenusMCP(t, "")
	secret := m.token(t, []string{"products:read", "dispensaries:read"}, keygate.Expiry90Days, time.Now())
	for _, path := range []string{"/mcp/%2e%2e/%2e%2e/x", "/mcp/%2E%2E/v2/products", "/mcp/a/%2e%2e/%2e%2e/x", "/mcp/.%2e/x", "/mcp/a%2Fb", "/mcp//x", "/mcp/./x"} {
		req, _ := http.NewRequest("POST", m.api+"/x", strings.NewReader(searchProducts))
		req.URL.Opaque = "//" + req.URL.Host + path // sent as written, not cleaned by the client
		req.Header.Set("X-Token", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || string(b) != `{"detail": "Not Found"}` || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	if n := m.upstream.count(); n != 0 {
		for _, r := range m.upstream.seen {
			t.Logf("upstream got %s", r.URL.RequestURI())
		}
		t.Errorf("the MCP upstream served %d unclean paths", n)
	}
	if r := send(t, "POST", m.api+"/mcp/sub", searchProducts, "X-Token", secret); r.status != 200 {
		t.Errorf("clean path under /mcp/: %d %s", r.status, r.body)
	}
}

// Guessing API tokens on the MCP endpoint spends the same failed-auth
// budget per address as on the routes (cannmenus: 60 a minute); asking
// without a token, as every MCP client does first, spends nothing.
func TestMCPTokenGuessesCountAgainstThePerAddressBudget(t *testing.T) {
	m := startMenusMCP(t, "")
	post := func(header ...string) reply {
		return send(t, "POST", m.api+"/mcp", searchProducts, append([]string{"Content-Type", "application/json"}, header...)...)
	}
	for i := 0; i < 3; i++ {
		if r := post(); r.status != 401 || strings.Contains(r.header.Get("WWW-Authenticate"), "error=") {
			t.Fatalf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	for i := 1; i <= 59; i++ {
		if r := post("X-Token", keygate.GenerateTokenSecret("cm_live_")); r.status != 401 {
			t.Fatalf("guess %d on MCP: %d %s", i, r.status, r.body)
		}
	}
	r := send(t, "GET", m.api+"/v2/products", "", "X-Token", keygate.GenerateTokenSecret("cm_live_"))
	if r.status != 404 || r.body != `{"detail": "Not Found"}` || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("60th failure, on REST: %d %s remaining %q", r.status, r.body, r.header.Get("X-RateLimit-Remaining"))
	}
	r = post("X-Token", keygate.GenerateTokenSecret("cm_live_"))
	if r.status != 429 || r.body != `{"error":"rate_limited","error_description":"Too many requests."}`+"\n" {
		t.Errorf("61st failure, on MCP: %d %s", r.status, r.body)
	}
	wantRateLimited(t, "61st failure, on MCP", r)
	r = send(t, "GET", m.api+"/v2/products", "", "X-Token", keygate.GenerateTokenSecret("cm_live_"))
	if r.status != 429 || r.body != `{"detail": "Too Many Requests"}` {
		t.Errorf("62nd failure, on REST: %d %s", r.status, r.body)
	}
	if n := m.upstream.count(); n != 0 {
		t.Errorf("the MCP upstream served %d guesses", n)
	}
}

// wantRateLimited checks a 429's headers: the failed-auth budget's limit,
// nothing remaining, when it resets and when to retry, as the gateway's
// own 429s carry them.
func wantRateLimited(t *testing.T, name string, r reply) {
	t.Helper()
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	reset, err2 := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || retry < 1 || retry > 63 || err2 != nil || reset < time.Now().Unix() ||
		r.header.Get("X-RateLimit-Limit") != "60" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("%s: Retry-After %q, X-RateLimit-Limit %q, -Remaining %q, -Reset %q", name, r.header.Get("Retry-After"),
			r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"), r.header.Get("X-RateLimit-Reset"))
	}
}

// Guessing OAuth access tokens on the MCP endpoint spends the same
// failed-auth budget per address as guessing API tokens, on MCP and on the
// routes: well-formed unknown access tokens, malformed ones and bearer
// values that are no token at all each count once, every refusal says how
// much is left, and once it is spent the MCP endpoint answers 429 with
// Retry-After and the X-RateLimit-* headers, before any lookup.
func TestMCPAccessTokenGuessesCountAgainstThePerAddressBudget(t *testing.T) {
	m := startMenusMCP(t, "")
	post := func(header ...string) reply {
		return send(t, "POST", m.api+"/mcp", searchProducts, append([]string{"Content-Type", "application/json"}, header...)...)
	}
	guesses := []string{
		keygate.GenerateTokenSecret("kgo_at_"),         // well-formed, unknown
		keygate.GenerateTokenSecret("kgo_at_")[:20],    // malformed
		"kgo_at_" + strings.Repeat("A", 36),            // bad checksum
		"not-a-token-at-all",                           // neither kind
		keygate.GenerateTokenSecret("kgo_at_") + " x ", // trailing junk
	}
	used := 0
	for round := 0; used < 50; round++ {
		bearer := guesses[round%len(guesses)]
		r := post("Authorization", "Bearer "+bearer)
		used++
		if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("OAuth guess %d (%q): %d %q %s", used, bearer, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
		if got := r.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(60-used) {
			t.Fatalf("OAuth guess %d: X-RateLimit-Remaining %q, want %d", used, got, 60-used)
		}
	}
	for ; used < 59; used++ {
		if r := post("X-Token", keygate.GenerateTokenSecret("cm_live_")); r.status != 401 || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(60-used-1) {
			t.Fatalf("API token guess %d on MCP: %d remaining %q", used+1, r.status, r.header.Get("X-RateLimit-Remaining"))
		}
	}
	r := send(t, "GET", m.api+"/v2/products", "", "X-Token", keygate.GenerateTokenSecret("cm_live_"))
	if r.status != 404 || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("60th failure, on REST: %d %s remaining %q", r.status, r.body, r.header.Get("X-RateLimit-Remaining"))
	}
	for _, bearer := range guesses {
		r := post("Authorization", "Bearer "+bearer)
		if r.status != 429 || r.body != `{"error":"rate_limited","error_description":"Too many requests."}`+"\n" {
			t.Errorf("OAuth guess %q past the budget: %d %s", bearer, r.status, r.body)
		}
		wantRateLimited(t, "OAuth guess past the budget", r)
	}
	r = send(t, "GET", m.api+"/v2/products", "", "X-Token", keygate.GenerateTokenSecret("cm_live_"))
	if r.status != 429 {
		t.Errorf("REST after the MCP guesses: %d %s", r.status, r.body)
	}
	// Asking without credentials, as MCP clients do first, still gets
	// the OAuth challenge.
	if r := post(); r.status != 401 || strings.Contains(r.header.Get("WWW-Authenticate"), "error=") {
		t.Errorf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if n := m.upstream.count(); n != 0 {
		t.Errorf("the MCP upstream served %d guesses", n)
	}
}

// What keygate advertises comes from its config, never from the request:
// a hostile Host, X-Forwarded-Host or Forwarded header changes neither the
// issuer and endpoints of the authorization server's metadata, nor the
// resource, authorization server and metadata URL an MCP client is sent
// to, so nobody can have a client send its login or its token elsewhere.
func TestOAuthURLsIgnoreTheRequestsHost(t *testing.T) {
	m := startMenusMCP(t, "")
	admin := "http://" + m.srv.Addr("admin")
	hostile := []string{"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "Forwarded", "host=evil.example;proto=https"}
	get := func(url string, host string, header ...string) reply {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{resp.StatusCode, resp.Header, string(b)}
	}
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		honest, evil := get(admin+path, ""), get(admin+path, "evil.example", hostile...)
		if honest.status != http.StatusOK || evil.body != honest.body || !strings.Contains(honest.body, `"issuer":"`+admin+`"`) {
			t.Errorf("%s with a hostile Host: %d %s; with none: %d %s", path, evil.status, evil.body, honest.status, honest.body)
		}
	}
	metadata := m.api + "/.well-known/oauth-protected-resource/mcp"
	honest, evil := get(metadata, ""), get(metadata, "evil.example", hostile...)
	if honest.status != http.StatusOK || evil.body != honest.body || !strings.Contains(honest.body, `"resource":"`+m.api+`/mcp"`) {
		t.Errorf("protected resource metadata with a hostile Host: %d %s; with none: %d %s", evil.status, evil.body, honest.status, honest.body)
	}
	honest, evil = get(m.api+"/mcp", ""), get(m.api+"/mcp", "evil.example", hostile...)
	if honest.status != http.StatusUnauthorized || evil.header.Get("WWW-Authenticate") != honest.header.Get("WWW-Authenticate") ||
		!strings.Contains(honest.header.Get("WWW-Authenticate"), `resource_metadata="`+metadata+`"`) {
		t.Errorf("challenge with a hostile Host: %d %q; with none: %d %q", evil.status, evil.header.Get("WWW-Authenticate"), honest.status, honest.header.Get("WWW-Authenticate"))
	}
}
