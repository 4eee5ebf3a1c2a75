package mcp_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/demo/mcpserver"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/server"
)

// stack is keygate started exactly as `keygate serve` starts it: a YAML
// config read by config.Parse, then server.New and Start. Behind it run
// the demo menus API, the demo events API and the demo MCP server, which
// check keygate's identity JWTs with the server's IdentityVerifier.
//
// One stack serves every test in the package: it starts on first use and
// TestMain stops it. Each test logs in as a user of its own (newUser), so
// the grants it checks are the ones it made.
type stack struct {
	srv       *server.Server
	store     keygate.Store
	issuer    string // admin.public_url
	adminURL  string // the admin listener (dashboard, OAuth server)
	apiURL    string // the menus API's listener
	mcpURL    string // its MCP endpoint
	eventsURL string // the events API's listener (canskan preset)
	// docURL is a Client ID Metadata Document served over HTTPS from a
	// certificate keygate is told to trust (server.Options.OAuthRootCAs).
	docURL  string
	menus   *keygate.API
	org     *keygate.Organization
	orgElse *keygate.Organization
	// passwordHash is userPass hashed once: every user shares it, since
	// hashing is slow under the race detector.
	passwordHash string
	users        atomic.Int64
	logs         *logtest.Buffer // keygate's log
	stops        []func()
}

const (
	userPass = "correct horse battery staple"
	// conformanceClient is pre-registered in the config for the
	// conformance suite, with a loopback redirect URI that matches any
	// port (RFC 8252 §7.3).
	conformanceClient = "conformance-suite"
	// docRedirect is the redirect URI in the metadata document; client.mjs
	// uses it.
	docRedirect = "http://127.0.0.1:33418/callback"
)

var mcpScopes = []string{demo.ScopeProductsRead, demo.ScopeDispensariesRead}

// configTemplate is keygate.yaml for the stack. Everything a deployment
// would write is here; only the trusted roots for the metadata document's
// test certificate come through server.Options.
const configTemplate = `
data_dir: %[1]q
admin:
  listen: %[2]s
oauth:
  clients:
    - id: ` + conformanceClient + `
      name: MCP conformance suite
      redirect_uris: [http://127.0.0.1/callback]
  allow_dynamic_registration: true
  # The metadata document is served from this machine.
  allow_private_cimd: true
apis:
  - name: ` + demo.MenusAPIName + `
    preset: cannmenus
    listen: %[3]s
    upstream: %[4]s
    token_prefix: cm_
    scopes: [products:read, dispensaries:read]
    allow_never_expiry: true
    rate_limits: {public: none, token: none}
    mcp:
      path: /mcp
      upstream: %[5]s
      scopes: [products:read, dispensaries:read]
      allow_api_tokens: true
    routes:
      - methods: [GET]
        path: /v2/products
        access: token
        scopes: [products:read]
        entitlements: {states: states}
  - name: ` + demo.EventsAPIName + `
    preset: canskan
    listen: %[6]s
    upstream: %[7]s
    token_prefix: csk_
    routes:
      - {methods: [GET], path: /api/v1/organization, access: token}
`

var shared struct {
	once sync.Once
	s    *stack
	err  error
}

// TestMain stops the shared stack after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		shared.s.stop()
	}
	os.Exit(code)
}

// sharedStack returns the package's running keygate, starting it on first
// use.
func sharedStack(t *testing.T) *stack {
	t.Helper()
	shared.once.Do(func() { shared.s, shared.err = startStack() })
	if shared.err != nil {
		t.Fatalf("starting keygate: %v", shared.err)
	}
	return shared.s
}

func startStack() (s *stack, err error) {
	s = &stack{logs: &logtest.Buffer{}}
	defer func() {
		if err != nil {
			s.stop()
			s = nil
		}
	}()
	dir, err := os.MkdirTemp("", "keygate-e2e-mcp-")
	if err != nil {
		return nil, err
	}
	s.onStop(func() { os.RemoveAll(dir) })

	// The upstreams' addresses go into the config, but their handlers
	// need the verifier of the server that config builds: bind first,
	// serve later.
	menusUp, eventsUp, mcpUp := unstarted(s), unstarted(s), unstarted(s)
	roots := s.serveMetadataDocument()

	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	adminAddr, menusAddr, eventsAddr := addrs[0], addrs[1], addrs[2]
	yaml := fmt.Sprintf(configTemplate, dir, adminAddr, menusAddr, "http://"+menusUp.Listener.Addr().String(),
		"http://"+mcpUp.Listener.Addr().String()+"/mcp", eventsAddr, "http://"+eventsUp.Listener.Addr().String())
	cfg, err := config.Parse("keygate.yaml", []byte(yaml))
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(s.logs, nil))
	if s.srv, err = server.New(context.Background(), cfg, server.Options{Logger: logger, OAuthRootCAs: roots}); err != nil {
		return nil, err
	}
	// Stopped before the upstreams (stops run last first).
	s.onStop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.srv.Shutdown(ctx)
	})

	verifier := s.srv.IdentityVerifier()
	readerFor := func(api string) demo.IdentityReader {
		return func(r *http.Request) (*keygate.Identity, error) { return verifier.FromRequest(r, api) }
	}
	menusUp.Config.Handler = demo.MenusAPI(readerFor(demo.MenusAPIName))
	eventsUp.Config.Handler = demo.EventsAPI(readerFor(demo.EventsAPIName))
	// The MCP server reads the menus API directly with the identity
	// keygate verified, as in `keygate demo`.
	mcpUp.Config.Handler = mcpserver.New("http://"+menusUp.Listener.Addr().String(), readerFor(demo.MenusAPIName))
	for _, u := range []*httptest.Server{menusUp, eventsUp, mcpUp} {
		u.Start()
	}
	if err := s.srv.Start(); err != nil {
		return nil, err
	}

	s.store = s.srv.Store()
	s.issuer = cfg.Admin.PublicURL
	s.adminURL = "http://" + s.srv.Addr("admin")
	s.apiURL = "http://" + s.srv.Addr(demo.MenusAPIName)
	s.mcpURL = s.apiURL + "/mcp"
	s.eventsURL = "http://" + s.srv.Addr(demo.EventsAPIName)
	for _, api := range s.srv.APIs() {
		if api.Name == demo.MenusAPIName {
			s.menus = api
		}
	}
	if s.issuer != s.adminURL || s.apiURL != "http://"+menusAddr || s.menus == nil || s.menus.MCP == nil {
		return nil, fmt.Errorf("keygate is not where the config put it: issuer %s, admin %s, menus %s", s.issuer, s.adminURL, s.apiURL)
	}
	return s, s.seed()
}

// unstarted binds a loopback listener for an upstream, served once its
// handler is set.
func unstarted(s *stack) *httptest.Server {
	u := httptest.NewUnstartedServer(nil)
	s.onStop(u.Close)
	return u
}

// serveMetadataDocument serves the Client ID Metadata Document of
// client.mjs over HTTPS and returns the roots that trust its certificate.
func (s *stack) serveMetadataDocument() *x509.CertPool {
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"client_id": s.docURL, "client_name": "keygate e2e (metadata document)",
			"redirect_uris": []string{docRedirect},
			"grant_types":   []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
		})
	}))
	s.onStop(doc.Close)
	s.docURL = doc.URL + "/oauth/client-metadata.json"
	roots := x509.NewCertPool()
	roots.AddCert(doc.Certificate())
	return roots
}

func (s *stack) onStop(f func()) { s.stops = append(s.stops, f) }

func (s *stack) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

// freeAddrs returns n distinct loopback addresses free right now.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// seed stores two organizations: acme, entitled to California and
// Oregon, and globex, entitled to Colorado.
func (s *stack) seed() (err error) {
	ctx := context.Background()
	if s.passwordHash, err = password.Hash(userPass); err != nil {
		return err
	}
	s.org = &keygate.Organization{Slug: "acme", Name: "Acme Dispensaries", Plan: demo.PlanPro,
		Entitlements: keygate.Entitlements{States: []string{"California", "Oregon"}}}
	s.orgElse = &keygate.Organization{Slug: "globex", Name: "Globex", Plan: demo.PlanFree,
		Entitlements: keygate.Entitlements{States: []string{"Colorado"}}}
	return errors.Join(s.store.CreateOrganization(ctx, s.org), s.store.CreateOrganization(ctx, s.orgElse))
}

// newUser stores a user of the test's own, a member of acme and globex,
// whose password is userPass.
func (s *stack) newUser(t *testing.T) *keygate.User {
	t.Helper()
	n := s.users.Add(1)
	u := &keygate.User{Email: fmt.Sprintf("ada+%d@example.com", n), Name: fmt.Sprintf("Ada %d", n), PasswordHash: s.passwordHash}
	if err := s.store.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	for _, org := range []*keygate.Organization{s.org, s.orgElse} {
		if err := s.store.SetMembership(t.Context(), &keygate.Membership{OrganizationID: org.ID, UserID: u.ID, Role: keygate.RoleMember}); err != nil {
			t.Fatal(err)
		}
	}
	return u
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

// browser stands for the user's browser: cookies, no automatic
// redirects, form posts. Its methods return errors rather than failing a
// test, so SDK callbacks can use them.
type browser struct{ client *http.Client }

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

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

// isOAuthLogin and isConsent tell keygate's two authorization pages apart.
func (p *page) isOAuthLogin() bool {
	return p.status == http.StatusOK && strings.Contains(p.body, "Log in to keygate")
}

func (p *page) isConsent() bool {
	return p.status == http.StatusOK && strings.Contains(p.body, `value="approve"`) && !strings.Contains(p.body, `name="password"`)
}

// do sends one request; form, when not nil, is posted.
func (b *browser) do(method, u string, form url.Values) (*page, error) {
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
	resp, err := b.client.Do(req)
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

// step checks that a request answered with status (and a Location, for
// 303).
func step(what string, p *page, err error, status int) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if p.status != status || (status == http.StatusSeeOther && p.location == nil) {
		return fmt.Errorf("%s: HTTP %d, want %d: %s", what, p.status, status, p.body)
	}
	return nil
}

// approve does what user u does in the browser: open the authorization
// URL, log in on keygate's page, pick orgID, allow. It returns where
// keygate sends the browser back to.
func approve(authURL string, u *keygate.User, orgID string) (*url.URL, error) {
	b := newBrowser()
	login, err := b.do(http.MethodGet, authURL, nil)
	if err := step("authorization page", login, err, http.StatusOK); err != nil {
		return nil, err
	}
	if !login.isOAuthLogin() {
		return nil, fmt.Errorf("authorization page without a session is not the login page: %s", login.body)
	}
	consent, err := b.logIn(login, u)
	if err != nil {
		return nil, err
	}
	return b.consent(consent, orgID)
}

// logIn fills in keygate's OAuth login page as u and follows it to the
// consent page.
func (b *browser) logIn(login *page, u *keygate.User) (*page, error) {
	form := login.fields()
	form.Set("email", u.Email)
	form.Set("password", userPass)
	back, err := b.do(http.MethodPost, login.url.ResolveReference(&url.URL{Path: "login"}).String(), form)
	if err := step("login", back, err, http.StatusSeeOther); err != nil {
		return nil, err
	}
	consent, err := b.do(http.MethodGet, back.location.String(), nil)
	if err := step("consent page", consent, err, http.StatusOK); err != nil {
		return nil, err
	}
	return consent, nil
}

// consent picks orgID on the consent page and allows.
func (b *browser) consent(consent *page, orgID string) (*url.URL, error) {
	if !consent.isConsent() {
		return nil, fmt.Errorf("not the consent page: %s", consent.body)
	}
	form := consent.fields()
	form.Set("organization", orgID)
	form.Set("decision", "approve")
	done, err := b.do(http.MethodPost, consent.url.ResolveReference(&url.URL{Path: "authorize"}).String(), form)
	if err := step("approve", done, err, http.StatusSeeOther); err != nil {
		return nil, err
	}
	return done.location, nil
}

// dashboardLogin logs in as u on the dashboard's own login form.
func (b *browser) dashboardLogin(adminURL string, u *keygate.User) error {
	form, err := b.do(http.MethodGet, adminURL+"/login", nil)
	if err := step("dashboard login page", form, err, http.StatusOK); err != nil {
		return err
	}
	fields := form.fields()
	fields.Set("email", u.Email)
	fields.Set("password", userPass)
	done, err := b.do(http.MethodPost, adminURL+"/login", fields)
	if err := step("dashboard login", done, err, http.StatusSeeOther); err != nil {
		return err
	}
	if done.location.Path == "/login" {
		return fmt.Errorf("dashboard login sent back to the login page")
	}
	return nil
}
