package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

func TestUnauthenticatedCallersAreRefused(t *testing.T) {
	f := newFixture(t)
	apiToken := f.createToken(f.key(), "acme", `{"name": "x", "api": "menus"}`).Token
	revokedKey, revokedSecret, err := manage.CreateAdminKey(context.Background(), f.store, "old", f.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeAdminKey(context.Background(), revokedKey.ID, f.now); err != nil {
		t.Fatal(err)
	}
	const loginMessage = `Log in to the dashboard or send an admin key as "Authorization: Bearer kgadm_…".`
	for _, tc := range []struct {
		name, authorization, cookie, message string
	}{
		{"nothing", "", "", loginMessage},
		{"unknown session", "", "not-a-session", loginMessage},
		{"basic auth", "Basic YWRtaW46YWRtaW4=", "", `Send an admin key as "Authorization: Bearer kgadm_…".`},
		{"malformed key", "Bearer kgadm_short", "", "Invalid admin key."},
		{"well-formed unknown key", "Bearer " + keygate.GenerateTokenSecret(manage.AdminKeyPrefix), "", "Invalid admin key."},
		{"revoked key", "Bearer " + revokedSecret, "", "Invalid admin key."},
		{"API token instead of admin key", "Bearer " + apiToken, "", "Invalid admin key."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/me", "/api/v1/orgs", "/api/v1/orgs/acme/tokens", "/api/v1/orgs/nope/tokens"} {
				req := newRequest("GET", path, "", anonymous)
				if tc.authorization != "" {
					req.Header.Set("Authorization", tc.authorization)
				}
				if tc.cookie != "" {
					req.AddCookie(&http.Cookie{Name: "keygate_session", Value: tc.cookie})
				}
				r := f.serve(req)
				r.expectError(401, "unauthorized", tc.message)
				if got := r.Header().Get("WWW-Authenticate"); got != `Bearer realm="keygate"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
		})
	}
}

// A bad Authorization header is refused even beside a good session, so a
// script never silently acts as whoever is logged in to the browser.
func TestBadAdminKeyIsNotRescuedBySession(t *testing.T) {
	f := newFixture(t)
	c := f.login(f.owner)
	c.bearer = "kgadm_wrong"
	f.do(c, "GET", "/api/v1/me", "").expectError(401, "unauthorized", "Invalid admin key.")
}

func TestSessionChangesNeedTheCSRFToken(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	noCSRF := owner
	noCSRF.csrf = ""
	wrongCSRF := owner
	// One character changed; "x" alone would leave a token that already
	// begins with it (one in 64) unchanged.
	first := "x"
	if owner.csrf[:1] == first {
		first = "y"
	}
	wrongCSRF.csrf = first + owner.csrf[1:]
	other := f.login(f.owner) // another session of the same user
	crossed := owner
	crossed.csrf = other.csrf
	tok := f.createToken(owner, "acme", `{"name": "kept", "api": "menus"}`)

	const message = "Missing or wrong CSRF token: send the csrf_token from GET /api/v1/me in the X-CSRF-Token header."
	for _, c := range []caller{noCSRF, wrongCSRF, crossed} {
		f.do(c, "POST", "/api/v1/orgs/acme/tokens", `{"name": "x", "api": "menus"}`).expectError(403, "forbidden", message)
		f.do(c, "DELETE", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expectError(403, "forbidden", message)
		f.do(c, "POST", "/api/v1/orgs/acme/members", `{"email": "x@acme.test", "password": "secret", "role": "member"}`).expectError(403, "forbidden", message)
	}
	// The form field is not enough for the API: only the header counts.
	req := newRequest("POST", "/api/v1/orgs/acme/tokens", "csrf_token="+owner.csrf, noCSRF)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	f.serve(req).expectError(403, "forbidden", message)
	// Reading needs no CSRF token.
	f.do(noCSRF, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, nil)
	// Nothing above changed anything.
	var list struct{ Tokens []tokenBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != tok.ID {
		t.Errorf("tokens after refused changes: %+v", list.Tokens)
	}
	// Admin keys are not ambient credentials: no CSRF token needed.
	f.createToken(f.key(), "acme", `{"name": "y", "api": "events"}`)
}

func TestMeTellsASessionItsCSRFToken(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	var me struct {
		User          struct{ ID, Email string }
		AdminKey      *struct{ Name, Hint string } `json:"admin_key"`
		Admin         bool
		CSRFToken     string `json:"csrf_token"`
		Organizations []struct{ Slug, Role string }
	}
	f.do(caller{cookie: owner.cookie}, "GET", "/api/v1/me", "").expect(http.StatusOK, &me)
	if me.User.ID != f.owner.ID || me.User.Email != "owner@acme.test" || me.Admin || me.AdminKey != nil ||
		me.CSRFToken != owner.csrf || fmt.Sprint(me.Organizations) != "[{acme owner}]" {
		t.Errorf("me %+v", me)
	}

	var keyMe struct {
		User      *struct{}
		AdminKey  struct{ Name, Hint string } `json:"admin_key"`
		Admin     bool
		CSRFToken *string                 `json:"csrf_token"`
		Orgs      []struct{ Slug string } `json:"organizations"`
	}
	r := f.do(f.key(), "GET", "/api/v1/me", "").expect(http.StatusOK, &keyMe)
	if keyMe.User != nil || keyMe.AdminKey.Name != "ci" || !strings.HasPrefix(keyMe.AdminKey.Hint, "kgadm_…") ||
		!keyMe.Admin || keyMe.CSRFToken != nil || len(keyMe.Orgs) != 2 {
		t.Errorf("admin key me %s", r.Body)
	}
	if strings.Contains(r.Body.String(), f.adminKey) {
		t.Error("the admin key's secret is echoed")
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	f.do(owner, "GET", "/api/v1/me", "").expect(http.StatusOK, nil)
	req := newRequest("POST", "/logout", "", owner)
	if err := f.sessions.Logout(newRecorder(), req); err != nil {
		t.Fatal(err)
	}
	f.do(owner, "GET", "/api/v1/me", "").expectError(401, "unauthorized", "")
	f.do(owner, "POST", "/api/v1/orgs/acme/tokens", `{"name": "x", "api": "menus"}`).expectError(401, "unauthorized", "")
}

func TestExpiredSessionIsRefused(t *testing.T) {
	f := newFixture(t)
	f.sessions.Now = func() time.Time { return f.now }
	owner := f.login(f.owner)
	f.sessions.Now = func() time.Time { return f.now.Add(13 * time.Hour) }
	f.do(owner, "GET", "/api/v1/me", "").expectError(401, "unauthorized", "")
}

// A member of one organization cannot see or touch another's tokens; the
// other organization answers as if it did not exist.
func TestOrganizationsAreIsolated(t *testing.T) {
	f := newFixture(t)
	globexToken := f.createToken(f.login(f.globexOwner), "globex", `{"name": "theirs", "api": "menus"}`)
	acmeToken := f.createToken(f.login(f.owner), "acme", `{"name": "ours", "api": "menus"}`)
	const gone = `Organization "globex" not found.`
	for _, u := range []*keygate.User{f.owner, f.member} {
		c := f.login(u)
		f.do(c, "GET", "/api/v1/orgs/globex", "").expectError(404, "not_found", gone)
		f.do(c, "GET", "/api/v1/orgs/globex/tokens", "").expectError(404, "not_found", gone)
		f.do(c, "GET", "/api/v1/orgs/globex/tokens/"+globexToken.ID, "").expectError(404, "not_found", gone)
		f.do(c, "POST", "/api/v1/orgs/globex/tokens", `{"name": "mine now", "api": "menus"}`).expectError(404, "not_found", gone)
		f.do(c, "DELETE", "/api/v1/orgs/globex/tokens/"+globexToken.ID, "").expectError(404, "not_found", gone)
		f.do(c, "GET", "/api/v1/orgs/globex/members", "").expectError(404, "not_found", gone)
		f.do(c, "GET", "/api/v1/orgs/globex/usage", "").expectError(404, "not_found", gone)
		// Through their own organization's URL, another's token does not exist.
		f.do(c, "GET", "/api/v1/orgs/acme/tokens/"+globexToken.ID, "").expectError(404, "not_found", fmt.Sprintf("Token %q not found.", globexToken.ID))
		f.do(c, "DELETE", "/api/v1/orgs/acme/tokens/"+globexToken.ID, "").expectError(404, "not_found", fmt.Sprintf("Token %q not found.", globexToken.ID))
		f.do(c, "GET", "/api/v1/orgs/acme/usage?token="+globexToken.ID, "").expectError(404, "not_found", fmt.Sprintf("Token %q not found.", globexToken.ID))
	}
	// The same answer as for an organization that does not exist.
	f.do(f.login(f.owner), "GET", "/api/v1/orgs/nope/tokens", "").expectError(404, "not_found", `Organization "nope" not found.`)

	stored, err := f.store.FindTokenByID(context.Background(), globexToken.ID)
	if err != nil || stored.RevokedAt != nil {
		t.Fatalf("globex's token was touched: %+v %v", stored, err)
	}
	var list struct{ Tokens []tokenBody }
	f.do(f.login(f.globexOwner), "GET", "/api/v1/orgs/globex/tokens", "").expect(http.StatusOK, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != globexToken.ID {
		t.Errorf("globex tokens %+v", list.Tokens)
	}
	f.do(f.login(f.owner), "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != acmeToken.ID {
		t.Errorf("acme tokens %+v", list.Tokens)
	}
	// A site administrator sees both.
	f.do(f.login(f.sys), "GET", "/api/v1/orgs/globex/tokens", "").expect(http.StatusOK, nil)
	f.do(f.key(), "GET", "/api/v1/orgs/globex/tokens", "").expect(http.StatusOK, nil)
}

func TestUnknownPathsAndMethods(t *testing.T) {
	f := newFixture(t)
	f.do(f.key(), "GET", "/api/v1/nothing", "").expectError(404, "not_found", "No such endpoint: GET /api/v1/nothing. See /api/v1/openapi.json.")
	// The gateway serves verify; this handler does not claim it.
	f.do(f.key(), "POST", "/api/v1/verify", `{}`).expectError(404, "not_found", "No such endpoint: POST /api/v1/verify. See /api/v1/openapi.json.")
	r := f.do(f.key(), "PUT", "/api/v1/orgs/acme/tokens", `{}`)
	r.expectError(405, "method_not_allowed", "PUT is not allowed here; use GET, POST.")
	if got := r.Header().Get("Allow"); got != "GET, POST" {
		t.Errorf("Allow %q", got)
	}
	f.do(f.key(), "POST", "/api/v1/orgs/acme/tokens/tok_x", `{}`).expectError(405, "method_not_allowed", "POST is not allowed here; use GET, DELETE.")
}

func newRecorder() http.ResponseWriter { return &discard{header: http.Header{}} }

type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
