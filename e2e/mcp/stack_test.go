package mcp_test

import (
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/demo/mcpserver"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/preset"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
)

// stack is keygate assembled as `keygate demo` runs it, from the real
// parts: an SQLite file, the OAuth server on the admin listener, the
// menus API's gateway with its MCP endpoint mounted, the demo menus API
// and the demo MCP server as upstreams, and signed identity JWTs between
// them.
type stack struct {
	t       *testing.T
	store   *sqlite.Store
	issuer  string
	apiURL  string // the menus API's listener
	mcpURL  string // its MCP endpoint
	menus   *keygate.API
	user    *keygate.User
	org     *keygate.Organization
	orgElse *keygate.Organization
}

const (
	email    = "ada@example.com"
	userPass = "correct horse battery staple"
	// conformanceClient is pre-registered for the conformance suite, with
	// a loopback redirect URI that matches any port.
	conformanceClient = "conformance-suite"
)

var mcpScopes = []string{demo.ScopeProductsRead, demo.ScopeDispensariesRead}

type stackOptions struct {
	cimdRoots *x509.CertPool
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s := &stack{t: t, store: store}
	s.seed()

	key, err := identity.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	verifier := identity.NewVerifier(signer.JWKS())
	readIdentity := func(r *http.Request) (*keygate.Identity, error) {
		return verifier.FromRequest(r, demo.MenusAPIName)
	}
	menusUpstream := httptest.NewServer(demo.MenusAPI(readIdentity))
	t.Cleanup(menusUpstream.Close)
	mcpUpstream := httptest.NewServer(mcpserver.New(menusUpstream.URL, readIdentity))
	t.Cleanup(mcpUpstream.Close)

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	admin := httptest.NewUnstartedServer(nil)
	s.issuer = "http://" + admin.Listener.Addr().String()
	authServer, err := oauth.New(oauth.Config{
		Store:    store,
		Sessions: &session.Manager{Sessions: store, Users: store},
		Issuer:   s.issuer,
		Logger:   logger,
		Clients: []*keygate.OAuthClient{{
			ID: conformanceClient, Name: "MCP conformance suite", TokenEndpointAuthMethod: keygate.OAuthAuthNone,
			RedirectURIs: []string{"http://127.0.0.1/callback"},
		}},
		AllowPrivateCIMD: opts.cimdRoots != nil,
		CIMDRootCAs:      opts.cimdRoots,
	})
	if err != nil {
		t.Fatal(err)
	}
	admin.Config.Handler = authServer.Handler()
	admin.Start()
	t.Cleanup(admin.Close)

	s.menus = &keygate.API{
		Name:     demo.MenusAPIName,
		Preset:   preset.CannMenus(),
		Upstream: menusUpstream.URL,
		Tokens:   keygate.TokenPolicy{BasePrefix: "cm_", AllowNever: true},
		Routes: []keygate.Route{{
			Methods: []string{http.MethodGet}, Path: "/v2/products", Access: keygate.AccessToken,
			Scopes:       []string{demo.ScopeProductsRead},
			Entitlements: map[string]string{keygate.EntitlementStates: "states"},
		}},
		MCP: &keygate.MCPEndpoint{Path: "/mcp", Upstream: mcpUpstream.URL, Scopes: mcpScopes, AllowAPITokens: true},
	}
	tokens := gateway.NewTokens(store, gateway.TokensOptions{Logger: logger})
	g, err := gateway.New(gateway.Config{API: s.menus, Tokens: tokens, Signer: signer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mcpTarget, _ := url.Parse(mcpUpstream.URL)
	fail := func(w http.ResponseWriter, _ *http.Request, err error) {
		status, body := s.menus.Preset.Render(err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
	forward := gateway.NewForwarder(s.menus, mcpTarget, signer, fail, logger)

	listener := httptest.NewUnstartedServer(nil)
	s.apiURL = "http://" + listener.Listener.Addr().String()
	s.mcpURL = s.apiURL + "/mcp"
	guard := authServer.ProtectMCP(s.menus, s.mcpURL, forward.Forward, g.AuthenticateToken)
	for _, p := range []string{"/mcp", "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		g.Mount(p, guard)
	}
	listener.Config.Handler = g
	listener.Start()
	t.Cleanup(listener.Close)
	return s
}

// seed stores a user who belongs to two organizations: acme, entitled to
// California and Oregon, and globex, entitled to Colorado.
func (s *stack) seed() {
	ctx := s.t.Context()
	hash, err := password.Hash(userPass)
	if err != nil {
		s.t.Fatal(err)
	}
	s.user = &keygate.User{Email: email, Name: "Ada", PasswordHash: hash}
	s.org = &keygate.Organization{Slug: "acme", Name: "Acme Dispensaries", Plan: demo.PlanPro,
		Entitlements: keygate.Entitlements{States: []string{"California", "Oregon"}}}
	s.orgElse = &keygate.Organization{Slug: "globex", Name: "Globex", Plan: demo.PlanFree,
		Entitlements: keygate.Entitlements{States: []string{"Colorado"}}}
	for _, err := range []error{
		s.store.CreateUser(ctx, s.user),
		s.store.CreateOrganization(ctx, s.org),
		s.store.CreateOrganization(ctx, s.orgElse),
	} {
		if err != nil {
			s.t.Fatal(err)
		}
	}
	for _, org := range []*keygate.Organization{s.org, s.orgElse} {
		if err := s.store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: s.user.ID, Role: keygate.RoleMember}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// requireNode returns the node binary when the npm packages are
// installed. Locally the tests skip without them; in CI (CI set) they fail,
// because .ci/run installs them with `npm ci`.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("node_modules", "@modelcontextprotocol", "sdk", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and e2e/mcp/node_modules are required in CI (run `npm ci` in e2e/mcp): %v", err)
		}
		t.Skipf("skipping: node or e2e/mcp/node_modules missing (run `npm ci` in e2e/mcp): %v", err)
	}
	return node
}

// browser stands for the user's browser in the tests.
type browser struct{ t *testing.T }

func newBrowser(t *testing.T) *browser { return &browser{t: t} }

type page struct {
	status   int
	body     string
	location *url.URL
	url      *url.URL
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

func (p *page) fields() url.Values {
	out := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		if !out.Has(m[1]) {
			out.Set(m[1], html.UnescapeString(m[2]))
		}
	}
	return out
}

// approve logs in and approves the authorization request at authURL for
// orgID, returning where keygate sends the browser back to.
func (b *browser) approve(authURL, orgID string) *url.URL {
	b.t.Helper()
	back, err := approve(authURL, orgID)
	if err != nil {
		b.t.Fatal(err)
	}
	return back
}

// approve does what the user does in the browser: log in, pick orgID,
// allow. It reports problems as errors so SDK callbacks can run it.
func approve(authURL, orgID string) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, u string, form url.Values) (*page, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			return nil, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		p := &page{status: resp.StatusCode, body: string(raw), url: req.URL}
		if loc := resp.Header.Get("Location"); loc != "" {
			p.location, _ = req.URL.Parse(loc)
		}
		return p, nil
	}
	step := func(what string, p *page, err error, status int) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if p.status != status || (status == http.StatusSeeOther && p.location == nil) {
			return fmt.Errorf("%s: HTTP %d, want %d: %s", what, p.status, status, p.body)
		}
		return nil
	}
	login, err := do(http.MethodGet, authURL, nil)
	if err := step("authorization page", login, err, http.StatusOK); err != nil {
		return nil, err
	}
	form := login.fields()
	form.Set("email", email)
	form.Set("password", userPass)
	back, err := do(http.MethodPost, login.url.ResolveReference(&url.URL{Path: "login"}).String(), form)
	if err := step("login", back, err, http.StatusSeeOther); err != nil {
		return nil, err
	}
	consent, err := do(http.MethodGet, back.location.String(), nil)
	if err := step("consent page", consent, err, http.StatusOK); err != nil {
		return nil, err
	}
	form = consent.fields()
	form.Set("organization", orgID)
	form.Set("decision", "approve")
	done, err := do(http.MethodPost, consent.url.ResolveReference(&url.URL{Path: "authorize"}).String(), form)
	if err := step("approve", done, err, http.StatusSeeOther); err != nil {
		return nil, err
	}
	return done.location, nil
}
