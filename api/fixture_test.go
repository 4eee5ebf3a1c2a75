package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/preset"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/webhook"
)

// fixture is a management API on a real SQLite file with two organizations:
// "acme" (owner and member) and "globex" (its own owner), a site
// administrator, and an admin key.
type fixture struct {
	t        *testing.T
	store    *sqlite.Store
	handler  http.Handler
	sessions *session.Manager
	// hooks is the webhook dispatcher the handler emits through. It may
	// reach loopback receivers, gives each delivery one attempt, and sends
	// only when a test calls DeliverDue.
	hooks *webhook.Dispatcher
	logs  *bytes.Buffer
	now   time.Time

	acme, globex                    *keygate.Organization
	owner, member, globexOwner, sys *keygate.User
	adminKey                        string
	// changes are what the handler passed to Deps.Notify.
	changes []keygate.Change
}

// menus is limited to 2 active tokens and never allows "never"; events
// allows "never" and has no limit.
func testAPIs() []*keygate.API {
	return []*keygate.API{
		{
			Name: "menus", Preset: preset.CannMenus(),
			Tokens: keygate.TokenPolicy{BasePrefix: "cm_", Scopes: []string{"products:read", "analytics:read"}, MaxActiveTokens: 2},
			Routes: []keygate.Route{{Methods: []string{"GET"}, Path: "/v2/analytics", Access: keygate.AccessToken, Plans: []string{"pro"}}},
		},
		{
			Name: "events", Preset: preset.CANSKAN(),
			Tokens: keygate.TokenPolicy{BasePrefix: "csk_", Scopes: []string{"attendees:read", "attendees:write"}, AllowNever: true},
		},
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, logs: &bytes.Buffer{}, now: time.Now().UTC()}
	f.sessions = &session.Manager{Sessions: store, Users: store}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.hooks = webhook.New(store, webhook.Options{AllowPrivateAddresses: true, Retries: []time.Duration{}, Logger: logger})
	f.handler = api.New(api.Deps{
		Store: store, APIs: testAPIs(), Sessions: f.sessions, Logger: logger,
		Now:      func() time.Time { return f.now },
		Notify:   func(c keygate.Change) { f.changes = append(f.changes, c) },
		Webhooks: f.hooks,
	})
	f.acme = f.org("acme", "Acme Corp")
	f.globex = f.org("globex", "Globex")
	f.owner = f.user("owner@acme.test", false, f.acme, keygate.RoleOwner)
	f.member = f.user("member@acme.test", false, f.acme, keygate.RoleMember)
	f.globexOwner = f.user("owner@globex.test", false, f.globex, keygate.RoleOwner)
	f.sys = f.user("root@keygate.test", true, nil, "")
	_, f.adminKey, err = manage.CreateAdminKey(ctx, store, "ci", f.now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) org(slug, name string) *keygate.Organization {
	o := &keygate.Organization{ID: keygate.NewID("org"), Slug: slug, Name: name}
	if err := manage.CreateOrganization(context.Background(), f.store, o, f.now); err != nil {
		f.t.Fatal(err)
	}
	return o
}

// user stores a user directly: these tests log in through session.Manager,
// so no password is needed.
func (f *fixture) user(email string, admin bool, org *keygate.Organization, role string) *keygate.User {
	ctx := context.Background()
	u := &keygate.User{ID: keygate.NewID("usr"), Email: email, Name: strings.Split(email, "@")[0], PasswordHash: "x", IsAdmin: admin, CreatedAt: f.now}
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

// caller is how a request authenticates.
type caller struct {
	bearer string
	cookie *http.Cookie
	csrf   string
}

var anonymous = caller{}

func (f *fixture) key() caller { return caller{bearer: f.adminKey} }

// login starts a session for u as the dashboard would.
func (f *fixture) login(u *keygate.User) caller {
	f.t.Helper()
	rec := httptest.NewRecorder()
	s, err := f.sessions.Login(rec, httptest.NewRequest("POST", "/login", nil), u)
	if err != nil {
		f.t.Fatal(err)
	}
	return caller{cookie: rec.Result().Cookies()[0], csrf: s.CSRFToken}
}

type response struct {
	*httptest.ResponseRecorder
	f *fixture
}

func (f *fixture) do(c caller, method, path, body string) response {
	f.t.Helper()
	return f.serve(newRequest(method, path, body, c))
}

// expect checks the status and decodes the body into v (when not nil).
func (r response) expect(status int, v any) response {
	r.f.t.Helper()
	if r.Code != status {
		r.f.t.Fatalf("status %d, want %d; body %s", r.Code, status, r.Body)
	}
	if v != nil {
		if err := json.Unmarshal(r.Body.Bytes(), v); err != nil {
			r.f.t.Fatalf("decoding %s: %v", r.Body, err)
		}
	}
	return r
}

// expectError checks the status and the exact error shape.
func (r response) expectError(status int, code, message string) {
	r.f.t.Helper()
	if r.Code != status {
		r.f.t.Fatalf("status %d, want %d; body %s", r.Code, status, r.Body)
	}
	if ct := r.Header().Get("Content-Type"); ct != "application/json" {
		r.f.t.Errorf("Content-Type %q", ct)
	}
	var body map[string]map[string]string
	if err := json.Unmarshal(r.Body.Bytes(), &body); err != nil {
		r.f.t.Fatalf("decoding %s: %v", r.Body, err)
	}
	want := map[string]map[string]string{"error": {"code": code, "message": message}}
	if len(body) != 1 || len(body["error"]) != 2 || body["error"]["code"] != code || (message != "" && body["error"]["message"] != message) {
		r.f.t.Fatalf("body %s, want %v", r.Body, want)
	}
	if message == "" && body["error"]["message"] == "" {
		r.f.t.Fatalf("empty message in %s", r.Body)
	}
}

type tokenBody struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	API         string     `json:"api"`
	Hint        string     `json:"hint"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Expired     bool       `json:"expired"`
	Token       string     `json:"token"`
}

// createToken creates a token through the API and returns the response body.
func (f *fixture) createToken(c caller, org, body string) tokenBody {
	f.t.Helper()
	var tok tokenBody
	f.do(c, "POST", "/api/v1/orgs/"+org+"/tokens", body).expect(http.StatusCreated, &tok)
	return tok
}

func newRequest(method, path, body string, c caller) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	if c.csrf != "" {
		req.Header.Set(session.CSRFHeader, c.csrf)
	}
	return req
}

func (f *fixture) serve(req *http.Request) response {
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return response{rec, f}
}
