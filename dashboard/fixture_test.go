package dashboard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/dashboard"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/preset"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/webhook"
)

const testPassword = "correct horse"

// One argon2id hash shared by every test user keeps the tests fast.
var testPasswordHash = sync.OnceValue(func() string {
	h, err := password.Hash(testPassword)
	if err != nil {
		panic(err)
	}
	return h
})

// fixture is the dashboard on a real SQLite file, served over HTTP, with
// organizations "acme" (owner, member) and "globex" (its owner) and a site
// administrator.
type fixture struct {
	t      testing.TB
	store  *sqlite.Store
	server *httptest.Server
	logs   *logtest.Buffer
	now    time.Time
	logins *session.LoginLimiter
	// changes are what the dashboard passed to Deps.Notify.
	changes chan keygate.Change
	// hooks is the webhook dispatcher the dashboard emits through. It may
	// reach loopback receivers, gives each delivery one attempt, and sends
	// only when a test calls DeliverDue.
	hooks *webhook.Dispatcher
	// usage is the gateway's last-used recorder the pages merge from.
	usage *gateway.Usage

	acme, globex                    *keygate.Organization
	owner, member, globexOwner, sys *keygate.User
}

func testAPIs() []*keygate.API {
	return []*keygate.API{
		{
			Name: "menus", Preset: preset.CannMenus(),
			Tokens: keygate.TokenPolicy{BasePrefix: "cm_", Scopes: []string{"products:read", "analytics:read"}, MaxActiveTokens: 2},
		},
		{
			Name: "events", Preset: preset.CANSKAN(),
			Tokens: keygate.TokenPolicy{BasePrefix: "csk_", Scopes: []string{"attendees:read", "attendees:write"}, AllowNever: true},
		},
	}
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, logs: &logtest.Buffer{}, now: time.Now().UTC(), changes: make(chan keygate.Change, 100)}
	f.logins = &session.LoginLimiter{Now: func() time.Time { return f.now }}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Flushed by hand only: what the pages show before a flush is tested.
	f.usage = gateway.NewUsage(store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour, Logger: logger})
	t.Cleanup(func() { _ = f.usage.Close(context.Background()) })
	f.hooks = webhook.New(store, webhook.Options{AllowPrivateAddresses: true, Retries: []time.Duration{}, Logger: logger})
	h := dashboard.New(dashboard.Deps{
		Store: store, APIs: testAPIs(),
		Sessions: &session.Manager{Sessions: store, Users: store},
		Logger:   logger,
		Now:      func() time.Time { return f.now },
		Logins:   f.logins,
		ClientIP: testClientIP,
		Notify:   func(c keygate.Change) { f.changes <- c },
		Webhooks: f.hooks, PendingUsage: f.usage,
	})
	t.Cleanup(func() { h.Close() })
	f.server = httptest.NewServer(h)
	t.Cleanup(f.server.Close)
	f.acme = f.org("acme", "Acme Corp")
	f.globex = f.org("globex", "Globex")
	f.owner = f.user("owner@acme.test", false, f.acme, keygate.RoleOwner)
	f.member = f.user("member@acme.test", false, f.acme, keygate.RoleMember)
	f.globexOwner = f.user("owner@globex.test", false, f.globex, keygate.RoleOwner)
	f.sys = f.user("root@keygate.test", true, nil, "")
	return f
}

func (f *fixture) org(slug, name string) *keygate.Organization {
	o := &keygate.Organization{ID: keygate.NewID("org"), Slug: slug, Name: name}
	if err := manage.CreateOrganization(context.Background(), f.store, o, f.now); err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *fixture) user(email string, admin bool, org *keygate.Organization, role string) *keygate.User {
	ctx := context.Background()
	u := &keygate.User{ID: keygate.NewID("usr"), Email: email, Name: strings.Split(email, "@")[0], PasswordHash: testPasswordHash(), IsAdmin: admin, CreatedAt: f.now}
	if err := f.store.CreateUser(ctx, u); err != nil {
		f.t.Fatal(err)
	}
	if org != nil {
		if err := f.store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: u.ID, Role: role, CreatedAt: f.now}); err != nil {
			f.t.Fatal(err)
		}
	}
	return u
}

// browser is a client with its own cookies, like one browser profile.
type browser struct {
	f      *fixture
	client *http.Client
	// pages collects every body this browser received, to search for
	// secrets afterwards.
	pages []string
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, client: &http.Client{Jar: jar}}
}

// addressHeader stands in for the client address in these tests, so one
// test can log in from several addresses.
const addressHeader = "X-Test-Client-Address"

func testClientIP(r *http.Request) string {
	if a := r.Header.Get(addressHeader); a != "" {
		return a
	}
	host, _, _ := strings.Cut(r.RemoteAddr, ":")
	return host
}

// browserFrom is a browser whose requests come from address.
func (f *fixture) browserFrom(address string) *browser {
	b := f.browser()
	b.client.Transport = addressTransport(address)
	return b
}

type addressTransport string

func (a addressTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(addressHeader, string(a))
	return http.DefaultTransport.RoundTrip(r)
}

// page is a response with its body read.
type page struct {
	*http.Response
	Body string
}

func (b *browser) get(path string) page {
	b.f.t.Helper()
	resp, err := b.client.Get(b.f.server.URL + path)
	return b.read(resp, err)
}

func (b *browser) post(path string, form url.Values) page {
	b.f.t.Helper()
	resp, err := b.client.PostForm(b.f.server.URL+path, form)
	return b.read(resp, err)
}

// noFollow sends a request without following redirects.
func (b *browser) noFollow(method, path string, form url.Values) page {
	b.f.t.Helper()
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.f.server.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	return b.read(resp, err)
}

func (b *browser) read(resp *http.Response, err error) page {
	b.f.t.Helper()
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	b.pages = append(b.pages, string(body))
	return page{resp, string(body)}
}

func (p page) expect(t testing.TB, status int, contains ...string) page {
	t.Helper()
	if p.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", p.Request.Method, p.Request.URL, p.StatusCode, status, p.Body)
	}
	for _, c := range contains {
		if !strings.Contains(p.Body, c) {
			t.Fatalf("%s %s: body lacks %q\n%s", p.Request.Method, p.Request.URL, c, p.Body)
		}
	}
	return p
}

func (p page) lacks(t testing.TB, absent ...string) page {
	t.Helper()
	for _, a := range absent {
		if strings.Contains(p.Body, a) {
			t.Fatalf("%s %s: body contains %q\n%s", p.Request.Method, p.Request.URL, a, p.Body)
		}
	}
	return p
}

var (
	csrfField   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	formIDField = regexp.MustCompile(`name="form_id" value="([^"]+)"`)
	secretField = regexp.MustCompile(`id="new-token" class="secret" value="([^"]+)"`)
)

func field(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in\n%s", re, body)
	}
	return m[1]
}

// login logs the browser in as u and returns its CSRF token.
func (b *browser) login(u *keygate.User) string {
	b.f.t.Helper()
	form := b.get("/login").expect(b.f.t, http.StatusOK, "Log in to keygate")
	p := b.post("/login", url.Values{
		"csrf_token": {field(b.f.t, csrfField, form.Body)},
		"email":      {u.Email},
		"password":   {testPassword},
	})
	if p.StatusCode != http.StatusOK {
		b.f.t.Fatalf("login as %s: %d\n%s", u.Email, p.StatusCode, p.Body)
	}
	return field(b.f.t, csrfField, p.Body)
}

// createToken fills in and sends the create form, returning the response.
func (b *browser) createToken(org string, form url.Values) page {
	b.f.t.Helper()
	q := ""
	if api := form.Get("api"); api != "" {
		q = "?api=" + api
	}
	newForm := b.get("/orgs/"+org+"/tokens/new"+q).expect(b.f.t, http.StatusOK)
	form.Set("csrf_token", field(b.f.t, csrfField, newForm.Body))
	form.Set("form_id", field(b.f.t, formIDField, newForm.Body))
	return b.post("/orgs/"+org+"/tokens", form)
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.f.server.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (f *fixture) activeTokens(org *keygate.Organization) []*keygate.Token {
	f.t.Helper()
	tokens, err := f.store.ListTokens(context.Background(), keygate.TokenFilter{OrganizationID: org.ID})
	if err != nil {
		f.t.Fatal(err)
	}
	return tokens
}
