package oauth_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
)

// The tests run the authorization server for real: an SQLite file, the
// admin handler and a guarded MCP endpoint on httptest servers, and an
// upstream that records what keygate forwards. Only the clock is fake.

const (
	userEmail    = "ada@example.com"
	userPassword = "correct horse battery staple"
	// identityHeader is where the tests' forward func puts the identity
	// (the gateway signs a JWT instead).
	identityHeader = "X-Test-Identity"
)

var mcpScopes = []string{"products:read", "dispensaries:read"}

// clock is the tests' time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	hashOnce sync.Once
	pwHash   string
)

// passwordHash hashes the test password once: argon2id is slow on purpose.
func passwordHash(t testing.TB) string {
	hashOnce.Do(func() {
		h, err := password.Hash(userPassword)
		if err != nil {
			t.Fatalf("password.Hash: %v", err)
		}
		pwHash = h
	})
	return pwHash
}

// upstream records the requests keygate forwards to the MCP server.
type upstream struct {
	mu       sync.Mutex
	requests []*http.Request
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.requests = append(u.requests, r.Clone(context.Background()))
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
}

func (u *upstream) last(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		t.Fatal("nothing reached the upstream")
	}
	return u.requests[len(u.requests)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

type harness struct {
	t        testing.TB
	ctx      context.Context
	clock    *clock
	store    *sqlite.Store
	server   *oauth.Server
	admin    *httptest.Server
	issuer   string
	apis     map[string]*apiServer
	upstream *upstream
	user     *keygate.User
	browser  *browser              // logged in by authorize
	org      *keygate.Organization // the user's first organization
	org2     *keygate.Organization // the user's second organization
}

// apiServer is one API listener with its guarded MCP endpoint.
type apiServer struct {
	api      *keygate.API
	srv      *httptest.Server
	resource string
}

type harnessOptions struct {
	config      func(*oauth.Config)
	apiTokens   bool
	secondAPI   bool
	adminServer func(http.Handler) *httptest.Server
}

func newHarness(t testing.TB, opts ...func(*harnessOptions)) *harness {
	t.Helper()
	var o harnessOptions
	for _, f := range opts {
		f(&o)
	}
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	h := &harness{
		t: t, ctx: ctx, store: store,
		clock:    &clock{t: time.Now().UTC().Truncate(time.Millisecond)},
		apis:     map[string]*apiServer{},
		upstream: &upstream{},
	}
	h.seed()

	h.admin = httptest.NewUnstartedServer(nil)
	h.issuer = "http://" + h.admin.Listener.Addr().String()
	cfg := oauth.Config{
		Store:    store,
		Sessions: &session.Manager{Sessions: store, Users: store, Now: h.clock.Now},
		Issuer:   h.issuer,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:      h.clock.Now,
	}
	if o.config != nil {
		o.config(&cfg)
	}
	h.server, err = oauth.New(cfg)
	if err != nil {
		t.Fatalf("oauth.New: %v", err)
	}
	h.admin.Config.Handler = h.server.Handler()
	h.admin.Start()
	t.Cleanup(h.admin.Close)

	h.addAPI("cannmenus", o.apiTokens)
	if o.secondAPI {
		h.addAPI("canskan", false)
	}
	return h
}

// seed stores a user who belongs to two organizations with different
// entitlements.
func (h *harness) seed() {
	h.t.Helper()
	h.user = &keygate.User{Email: userEmail, Name: "Ada", PasswordHash: passwordHash(h.t)}
	h.must("CreateUser", h.store.CreateUser(h.ctx, h.user))
	h.org = &keygate.Organization{Slug: "acme", Name: "Acme Dispensaries", Plan: "pro",
		Entitlements: keygate.Entitlements{States: []string{"California", "Oregon"}}}
	h.must("CreateOrganization", h.store.CreateOrganization(h.ctx, h.org))
	h.org2 = &keygate.Organization{Slug: "globex", Name: "Globex", Plan: "free",
		Entitlements: keygate.Entitlements{States: []string{"Colorado"}, Brands: []string{"Sunny Farms"}}}
	h.must("CreateOrganization", h.store.CreateOrganization(h.ctx, h.org2))
	for _, org := range []*keygate.Organization{h.org, h.org2} {
		h.must("SetMembership", h.store.SetMembership(h.ctx, &keygate.Membership{
			OrganizationID: org.ID, UserID: h.user.ID, Role: keygate.RoleMember}))
	}
}

func (h *harness) must(what string, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

// addAPI starts an API listener whose /mcp is guarded by the server and
// forwarded, with the identity as JSON, to the recording upstream.
func (h *harness) addAPI(name string, apiTokens bool) *apiServer {
	h.t.Helper()
	up := httptest.NewServer(h.upstream)
	h.t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	forward := func(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
		r = r.Clone(r.Context())
		b, _ := json.Marshal(id)
		r.Header.Set(identityHeader, string(b))
		proxy.ServeHTTP(w, r)
	}
	var apiToken func(http.Header, *http.Request) (*keygate.Identity, error)
	if apiTokens {
		apiToken = func(_ http.Header, r *http.Request) (*keygate.Identity, error) {
			switch r.Header.Get("X-Token") {
			case "":
				return nil, keygate.Errorf(keygate.ETOKENMISSING, "No token.")
			case "cm_live_good":
				return &keygate.Identity{OrganizationID: h.org.ID, TokenID: "tok_good", Scopes: mcpScopes, API: name}, nil
			case "cm_live_narrow":
				return &keygate.Identity{OrganizationID: h.org.ID, TokenID: "tok_narrow", Scopes: []string{"brands:read"}, API: name}, nil
			case "cm_live_expired":
				return nil, keygate.Errorf(keygate.ETOKENEXPIRED, "API token has expired.")
			}
			return nil, keygate.Errorf(keygate.ETOKENINVALID, "Invalid API token.")
		}
	}
	a := &apiServer{
		api: &keygate.API{Name: name, MCP: &keygate.MCPEndpoint{Path: "/mcp", Scopes: mcpScopes, AllowAPITokens: apiTokens}},
		srv: httptest.NewUnstartedServer(nil),
	}
	a.resource = "http://" + a.srv.Listener.Addr().String() + "/mcp"
	a.srv.Config.Handler = h.server.ProtectMCP(a.api, a.resource, forward, apiToken, nil)
	a.srv.Start()
	h.t.Cleanup(a.srv.Close)
	h.apis[name] = a
	return a
}

func (h *harness) api() *apiServer { return h.apis["cannmenus"] }

// browser is a user agent with cookies that does not follow redirects, so
// each step of the flow can be checked.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status   int
	header   http.Header
	body     string
	location *url.URL
	url      *url.URL
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, header: resp.Header, body: string(body), url: req.URL}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.location, _ = req.URL.Parse(loc)
	}
	return p
}

func (b *browser) get(u string) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
var orgRadio = regexp.MustCompile(`<input type="radio" id="[^"]*" name="organization" value="([^"]+)"`)

// fields returns the hidden fields of a page's forms (the first of each name).
func (p *page) fields() url.Values {
	out := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		if !out.Has(m[1]) {
			out.Set(m[1], html.UnescapeString(m[2]))
		}
	}
	return out
}

// resolve returns a form action relative to the page.
func (p *page) resolve(ref string) string {
	return p.url.ResolveReference(&url.URL{Path: ref}).String()
}

// login fills in the login page and follows the redirect back to the
// authorization endpoint, returning the page found there.
func (b *browser) login(loginPage *page, email, pw string) *page {
	b.t.Helper()
	form := loginPage.fields()
	form.Set("email", email)
	form.Set("password", pw)
	p := b.post(loginPage.resolve("login"), form)
	if p.status != http.StatusSeeOther || p.location == nil {
		b.t.Fatalf("login: status %d, want 303; body: %s", p.status, p.body)
	}
	return b.get(p.location.String())
}

// decide submits the consent page for organization (its first one when "").
func (b *browser) decide(consent *page, decision, orgID string) *page {
	b.t.Helper()
	form := consent.fields()
	if orgID == "" {
		if m := orgRadio.FindStringSubmatch(consent.body); m != nil {
			orgID = m[1]
		}
	}
	form.Set("organization", orgID)
	form.Set("decision", decision)
	return b.post(consent.resolve("authorize"), form)
}

// authorize runs the whole browser part of the flow: login (once per
// harness: the session stays, as in a real browser) and approval for orgID,
// and returns the redirect to the client.
func (h *harness) authorize(authURL, orgID string) *url.URL {
	h.t.Helper()
	if h.browser == nil {
		h.browser = newBrowser(h.t)
	}
	b := h.browser
	consent := b.get(authURL)
	if consent.status == http.StatusOK && strings.Contains(consent.body, "Log in to keygate") {
		consent = b.login(consent, userEmail, userPassword)
	}
	if consent.status != http.StatusOK || !strings.Contains(consent.body, "Allow") {
		h.t.Fatalf("after login: status %d, want the consent page; body: %s", consent.status, consent.body)
	}
	back := b.decide(consent, "approve", orgID)
	if back.status != http.StatusSeeOther || back.location == nil {
		h.t.Fatalf("approve: status %d, want 303 to the client; body: %s", back.status, back.body)
	}
	return back.location
}

// call sends an MCP request to the API's endpoint with the given headers.
func call(t *testing.T, endpoint string, header http.Header) *page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &page{status: resp.StatusCode, header: resp.Header, body: string(body), url: req.URL}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// postForm sends a form to the admin listener and decodes the JSON answer.
func (h *harness) postForm(path string, form url.Values, basicUser, basicPass string) (int, map[string]any, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return doJSON(h.t, req)
}

func doJSON(t testing.TB, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", req.Method, req.URL, body, err)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// register registers a client dynamically and returns the response.
func (h *harness) register(metadata map[string]any) (int, map[string]any) {
	h.t.Helper()
	b, _ := json.Marshal(metadata)
	req, _ := http.NewRequest(http.MethodPost, h.issuer+oauth.PathRegister, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	status, out, _ := doJSON(h.t, req)
	return status, out
}

// registerPublic registers a public client with one redirect URI.
func (h *harness) registerPublic(redirectURI string) string {
	h.t.Helper()
	status, out := h.register(map[string]any{
		"client_name":                "Test MCP client",
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "none",
	})
	if status != http.StatusCreated {
		h.t.Fatalf("register: status %d, body %v", status, out)
	}
	return out["client_id"].(string)
}
