package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/server"
)

// dashboardBrowser is a person on the dashboard: a cookie jar, a user
// agent, and forms posted with the CSRF token (and one-time form id) the
// page that holds them carries.
type dashboardBrowser struct {
	t      *testing.T
	base   string
	agent  string
	client *http.Client
}

func newDashboardBrowser(t *testing.T, base, agent string) *dashboardBrowser {
	jar, _ := cookiejar.New(nil)
	return &dashboardBrowser{t: t, base: base, agent: agent, client: &http.Client{Jar: jar}}
}

func (b *dashboardBrowser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	req.Header.Set("User-Agent", b.agent)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

var (
	hiddenField    = regexp.MustCompile(`name="(csrf_token|form_id)" value="([^"]*)"`)
	anyHiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

const oauthRedirect = "http://127.0.0.1:33418/callback"

// submit opens page, takes its CSRF token and form id, posts form to
// action, and returns the page it ends on, which must answer want.
func (b *dashboardBrowser) submit(page, action string, form url.Values, want int) string {
	b.t.Helper()
	status, body := b.do("GET", page, nil)
	if status != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", page, status, body)
	}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		if form.Get(m[1]) == "" {
			form.Set(m[1], m[2])
		}
	}
	status, body = b.do("POST", action, form)
	if status != want {
		b.t.Fatalf("POST %s: %d, want %d\n%s", action, status, want, body)
	}
	return body
}

var shownSecret = regexp.MustCompile(`class="secret" value="([^"]+)"`)

// shown returns the secret a page shows once (token, signing secret,
// invitation link).
func shown(t *testing.T, body string) string {
	t.Helper()
	m := shownSecret.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page shows no secret:\n%s", body)
	}
	return m[1]
}

// Every audited action done once through each door that offers it: the
// CLI, the management API (admin key, and a user's session), the
// dashboard (form posts with session and CSRF token), the OAuth consent
// page and keygate itself (token expiry). The audit log then holds exactly the expected entries,
// each with its actor, the client's address and user agent over HTTP,
// organization and target, and none of the secrets any of it created.
func TestAuditLogRecordsEveryActionThroughEveryDoor(t *testing.T) {
	dir := t.TempDir()
	yaml := "data_dir: .\nadmin:\n  listen: 127.0.0.1:0\nwebhooks:\n  allow_private_addresses: true\n" +
		"oauth:\n  clients:\n    - {id: desk-app, name: Desk app, redirect_uris: [\"" + oauthRedirect + "\"]}\n" +
		"apis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:0\n    public_url: http://menus.example.test\n    upstream: http://127.0.0.1:9\n" +
		"    scopes: [products:read]\n    mcp: {upstream: \"http://127.0.0.1:9/mcp\", scopes: [products:read]}\n" +
		"    routes:\n      - path: /v2/products\n        methods: [GET]\n        access: token\n"
	cfgPath := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, append(args, "--data-dir", dir)...)
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	lastLine := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return lines[len(lines)-1]
	}
	secretOf := func(link string) string { return link[strings.LastIndexByte(link, '/')+1:] }
	var secrets []string
	ctx := context.Background()

	// CLI: organization, owner (member added), admin keys created and one
	// revoked, a token created, rotated and revoked, an invitation made
	// and revoked.
	cli("orgs", "create", "--slug", "acme", "--name", "Acme")
	const ownerPassword, devPassword = "correct horse battery staple", "another long dev password"
	t.Setenv("KEYGATE_PASSWORD", ownerPassword)
	cli("users", "create", "--email", "owner@acme.test", "--org", "acme", "--role", "owner", "--admin")
	t.Setenv("KEYGATE_PASSWORD", devPassword)
	cli("users", "create", "--email", "dev@acme.test")
	adminKey := lastLine(cli("admin-keys", "create", "--name", "ci"))
	spareKey := lastLine(cli("admin-keys", "create", "--name", "spare"))
	apiRevokedKey := lastLine(cli("admin-keys", "create", "--name", "to-revoke-by-api"))
	cliToken := lastLine(cli("tokens", "create", "--org", "acme", "--api", "menus", "--name", "CLI token"))
	cliLink := lastLine(cli("members", "invite", "--org", "acme", "--email", "cli-invitee@acme.test"))
	secrets = append(secrets, ownerPassword, devPassword, adminKey, spareKey, apiRevokedKey, cliToken, secretOf(cliLink))

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := srv.Store()
	acme, err := store.FindOrganizationBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	owner, err := store.FindUserByEmail(ctx, "owner@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := store.FindUserByEmail(ctx, "dev@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	keyIDs := map[string]string{}
	keys, _ := store.ListAdminKeys(ctx)
	for _, k := range keys {
		keyIDs[k.Name] = k.ID
	}
	cli("admin-keys", "revoke", keyIDs["spare"])
	tokens, _ := store.ListTokens(ctx, keygate.TokenFilter{})
	cliTokenID := tokens[0].ID
	secrets = append(secrets, lastLine(cli("tokens", "rotate", "--grace", "0", cliTokenID)))
	cli("tokens", "revoke", cliTokenID)
	pending, _ := store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: acme.ID})
	cliInvitationID := pending[0].ID
	cli("members", "revoke-invitation", "--org", "acme", cliInvitationID)

	// Management API with the admin key.
	base := "http://" + srv.Addr("admin")
	apiCall := func(prepare func(*http.Request), method, path, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		prepare(req)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	withKey := func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+adminKey)
		r.Header.Set("User-Agent", "audit-test-api/1")
	}
	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		return apiCall(withKey, method, path, body, want)
	}
	id := func(m map[string]any) string { return m["id"].(string) }
	tok := call("POST", "/api/v1/orgs/acme/tokens", `{"name": "API token", "api": "menus"}`, 201)
	rotated := call("POST", "/api/v1/orgs/acme/tokens/"+id(tok)+"/rotate", `{"grace": "1h"}`, 200)
	call("DELETE", "/api/v1/orgs/acme/tokens/"+id(tok), "", 204)
	secrets = append(secrets, tok["token"].(string), rotated["token"].(string))
	call("POST", "/api/v1/orgs/acme/members", `{"email": "dev@acme.test", "role": "member"}`, 201)
	call("PUT", "/api/v1/orgs/acme/members/"+dev.ID, `{"role": "owner"}`, 200)
	call("DELETE", "/api/v1/orgs/acme/members/"+dev.ID, "", 204)
	lost := call("POST", "/api/v1/orgs/acme/invitations", `{"email": "dev@acme.test", "role": "member"}`, 201)
	call("DELETE", "/api/v1/orgs/acme/invitations/"+id(lost), "", 204)
	apiInvitation := call("POST", "/api/v1/orgs/acme/invitations", `{"email": "dev@acme.test", "role": "member"}`, 201)
	secrets = append(secrets, secretOf(lost["url"].(string)), secretOf(apiInvitation["url"].(string)))
	call("PATCH", "/api/v1/orgs/acme", `{"plan": "pro"}`, 200)
	call("PATCH", "/api/v1/orgs/acme", `{"name": "Acme Corp"}`, 200)
	call("PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.created": false}}`, 200)
	hook := call("POST", "/api/v1/orgs/acme/webhooks", `{"url": "http://127.0.0.1:9/in/receiver-secret-path", "events": ["audit.*"]}`, 201)
	call("PATCH", "/api/v1/orgs/acme/webhooks/"+id(hook), `{"disabled": true}`, 200)
	call("DELETE", "/api/v1/orgs/acme/webhooks/"+id(hook), "", 204)
	secrets = append(secrets, hook["secret"].(string), "receiver-secret-path")
	beta := call("POST", "/api/v1/orgs", `{"slug": "beta", "name": "Beta"}`, 201)
	call("DELETE", "/api/v1/orgs/beta", "", 204)
	call("DELETE", "/api/v1/admin-keys/"+keyIDs["to-revoke-by-api"], "", 204)

	// The invitee logs in on the dashboard and accepts through the API
	// with that session and its CSRF token.
	login := func(b *dashboardBrowser, email, pw string, want int) {
		t.Helper()
		b.submit("/login", "/login", url.Values{"email": {email}, "password": {pw}}, want)
	}
	devBrowser := newDashboardBrowser(t, base, "audit-test-dev/1")
	login(devBrowser, "dev@acme.test", devPassword, http.StatusOK)
	var devSession string
	for _, c := range devBrowser.client.Jar.Cookies(mustURL(t, base)) {
		devSession = c.Name + "=" + c.Value
		secrets = append(secrets, c.Value)
	}
	_, meBody := devBrowser.do("GET", "/api/v1/me", nil)
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	if json.Unmarshal([]byte(meBody), &me) != nil || me.CSRF == "" {
		t.Fatalf("GET /api/v1/me: %s", meBody)
	}
	secrets = append(secrets, me.CSRF)
	apiCall(func(r *http.Request) {
		r.Header.Set("Cookie", devSession)
		r.Header.Set("X-CSRF-Token", me.CSRF)
		r.Header.Set("User-Agent", "audit-test-dev/1")
	}, "POST", "/api/v1/me/invitations/accept", `{"secret": "`+secretOf(apiInvitation["url"].(string))+`"}`, 200)
	declined := call("POST", "/api/v1/orgs/acme/invitations", `{"email": "dev@acme.test", "role": "owner"}`, 201)
	secrets = append(secrets, secretOf(declined["url"].(string)))
	apiCall(func(r *http.Request) {
		r.Header.Set("Cookie", devSession)
		r.Header.Set("X-CSRF-Token", me.CSRF)
		r.Header.Set("User-Agent", "audit-test-dev/1")
	}, "POST", "/api/v1/me/invitations/decline", `{"secret": "`+secretOf(declined["url"].(string))+`"}`, 204)

	// Dashboard: a failed login, a good one, then every form the owner
	// (a site administrator too) has.
	ownerBrowser := newDashboardBrowser(t, base, "audit-test-browser/1")
	login(ownerBrowser, "owner@acme.test", "wrong password, twice wrong", http.StatusUnauthorized)
	login(ownerBrowser, "owner@acme.test", ownerPassword, http.StatusOK)
	page := ownerBrowser.submit("/orgs/acme/tokens/new?api=menus", "/orgs/acme/tokens",
		url.Values{"name": {"Dashboard token"}, "expires_in": {"30d"}, "environment": {"live"}}, http.StatusCreated)
	secrets = append(secrets, shown(t, page))
	dashTokenID := ""
	tokens, _ = store.ListTokens(ctx, keygate.TokenFilter{OrganizationID: acme.ID})
	for _, tk := range tokens {
		if tk.Name == "Dashboard token" {
			dashTokenID = tk.ID
		}
	}
	page = ownerBrowser.submit("/orgs/acme/tokens/"+dashTokenID+"/rotate", "/orgs/acme/tokens/"+dashTokenID+"/rotate",
		url.Values{"grace": {"0"}}, http.StatusOK)
	secrets = append(secrets, shown(t, page))
	ownerBrowser.submit("/orgs/acme/tokens/"+dashTokenID+"/delete", "/orgs/acme/tokens/"+dashTokenID+"/delete", url.Values{}, http.StatusOK)

	page = ownerBrowser.submit("/orgs/acme/members", "/orgs/acme/invitations", url.Values{"email": {"gone@acme.test"}, "role": {"member"}}, http.StatusOK)
	secrets = append(secrets, secretOf(shown(t, page)))
	pending, _ = store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: acme.ID, PendingAt: time.Now()})
	goneID := pending[0].ID
	ownerBrowser.submit("/orgs/acme/members", "/orgs/acme/invitations/"+goneID+"/revoke", url.Values{}, http.StatusOK)
	ownerBrowser.submit("/orgs/acme/members", "/orgs/acme/members/"+dev.ID+"/role", url.Values{"role": {"owner"}}, http.StatusOK)
	ownerBrowser.submit("/orgs/acme/members/"+dev.ID+"/remove", "/orgs/acme/members/"+dev.ID+"/remove", url.Values{}, http.StatusOK)
	page = ownerBrowser.submit("/orgs/acme/members", "/orgs/acme/invitations", url.Values{"email": {"dev@acme.test"}, "role": {"member"}}, http.StatusOK)
	dashLink := shown(t, page)
	secrets = append(secrets, secretOf(dashLink))
	pending, _ = store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: acme.ID, PendingAt: time.Now()})
	dashInvitationID := pending[0].ID
	invitationPath := dashLink[strings.Index(dashLink, "/invitations/"):]
	devBrowser.submit(invitationPath, invitationPath+"/accept", url.Values{}, http.StatusOK)

	page = ownerBrowser.submit("/orgs/acme/webhooks/new", "/orgs/acme/webhooks",
		url.Values{"url": {"http://127.0.0.1:9/hook/dashboard-receiver-path"}, "events": {"token.created"}}, http.StatusCreated)
	secrets = append(secrets, shown(t, page), "dashboard-receiver-path")
	hooks, _ := store.ListWebhooks(ctx, acme.ID)
	dashHookID := hooks[0].ID
	ownerBrowser.submit("/orgs/acme/webhooks/"+dashHookID, "/orgs/acme/webhooks/"+dashHookID+"/disable", url.Values{}, http.StatusOK)
	ownerBrowser.submit("/orgs/acme/webhooks/"+dashHookID+"/delete", "/orgs/acme/webhooks/"+dashHookID+"/delete", url.Values{}, http.StatusOK)

	ownerBrowser.submit("/orgs/acme/settings", "/orgs/acme/settings", url.Values{"name": {"Acme Inc"}, "plan": {"pro"}}, http.StatusOK)
	ownerBrowser.submit("/orgs/acme/settings", "/orgs/acme/settings", url.Values{"name": {"Acme Inc"}, "plan": {"enterprise"}}, http.StatusOK)
	ownerBrowser.submit("/orgs/acme/email", "/orgs/acme/email", url.Values{"emails": {"token.expiring", "token.created"}}, http.StatusOK)
	ownerBrowser.submit("/orgs", "/orgs", url.Values{"slug": {"gamma"}, "name": {"Gamma"}, "plan": {"free"}}, http.StatusOK)
	gamma, err := store.FindOrganizationBySlug(ctx, "gamma")
	if err != nil {
		t.Fatal(err)
	}
	ownerBrowser.submit("/orgs/gamma/delete", "/orgs/gamma/delete", url.Values{"confirm_slug": {"gamma"}}, http.StatusOK)

	// OAuth: the owner approves the desk app twice on the consent page (its
	// session from the dashboard serves it); one grant is revoked on the
	// dashboard's connected apps, the other through the API.
	var grantIDs []string
	for range 2 {
		verifier := oauth2.GenerateVerifier()
		q := url.Values{"response_type": {"code"}, "client_id": {"desk-app"}, "redirect_uri": {oauthRedirect},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
			"state": {"s"}, "resource": {"http://menus.example.test/mcp"}, "scope": {"products:read"}}
		status, consent := ownerBrowser.do("GET", "/oauth/authorize?"+q.Encode(), nil)
		if status != http.StatusOK {
			t.Fatalf("consent page: %d\n%s", status, consent)
		}
		form := url.Values{}
		for _, m := range anyHiddenField.FindAllStringSubmatch(consent, -1) {
			if !form.Has(m[1]) {
				form.Set(m[1], html.UnescapeString(m[2]))
			}
		}
		form.Set("organization", acme.ID)
		form.Set("decision", "approve")
		noFollow := *ownerBrowser.client
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest("POST", base+"/oauth/authorize", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", ownerBrowser.agent)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || err != nil || back.Query().Get("code") == "" {
			t.Fatalf("approving: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		tokenResp, err := http.PostForm(base+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
			"client_id": {"desk-app"}, "redirect_uri": {oauthRedirect}, "code_verifier": {verifier}, "resource": {"http://menus.example.test/mcp"}})
		if err != nil {
			t.Fatal(err)
		}
		var issued map[string]any
		rawIssued, _ := io.ReadAll(tokenResp.Body)
		tokenResp.Body.Close()
		if tokenResp.StatusCode != http.StatusOK || json.Unmarshal(rawIssued, &issued) != nil {
			t.Fatalf("token exchange: %d %s", tokenResp.StatusCode, rawIssued)
		}
		secrets = append(secrets, back.Query().Get("code"), verifier, issued["access_token"].(string))
		if rt, ok := issued["refresh_token"].(string); ok {
			secrets = append(secrets, rt)
		}
		grants, _ := store.ListOAuthGrants(ctx, keygate.OAuthGrantFilter{OrganizationID: acme.ID})
		grantIDs = append(grantIDs, grants[0].ID)
	}
	ownerBrowser.submit("/orgs/acme/connected-apps/"+grantIDs[0]+"/revoke", "/orgs/acme/connected-apps/"+grantIDs[0]+"/revoke", url.Values{}, http.StatusOK)
	call("DELETE", "/api/v1/orgs/acme/oauth-grants/"+grantIDs[1], "", 204)

	// Throttled: five wrong passwords for one email from one address, then
	// the sixth attempt is refused before its password is looked at.
	stranger := newDashboardBrowser(t, base, "audit-test-stranger/1")
	for range 5 {
		login(stranger, "nobody@acme.test", "guess-"+fmt.Sprint(time.Now().UnixNano()), http.StatusUnauthorized)
	}
	login(stranger, "nobody@acme.test", "one guess too many", http.StatusTooManyRequests)

	// keygate itself: a token whose expiry passed is recorded by the
	// system, once.
	raw, err := server.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	past := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	expired := &keygate.Token{ID: keygate.NewID("tok"), OrganizationID: acme.ID, API: "menus", Name: "Lapsed",
		Environment: keygate.EnvironmentLive, Hash: keygate.HashToken("lapsed"), Hint: "x…psed", CreatedBy: "cli",
		CreatedAt: past.Add(-time.Hour), ExpiresAt: &past}
	if err := raw.CreateToken(ctx, expired, 0); err != nil {
		t.Fatal(err)
	}
	if err := (&audit.Maintainer{Store: raw, Log: &audit.Log{Store: raw}}).RecordExpiries(ctx); err != nil {
		t.Fatal(err)
	}

	// What the log holds, oldest first.
	type seen struct{ action, actorType, actorName, address, agent, org, target string }
	slugs := map[string]string{"": "", acme.ID: "acme", id(beta): "beta", gamma.ID: "gamma"}
	logPage := call("GET", "/api/v1/audit-log?limit=200", "", 200)
	rawLog, _ := json.Marshal(logPage)
	var got []seen
	entries := logPage["entries"].([]any)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i].(map[string]any)
		a := e["actor"].(map[string]any)
		org, ok := slugs[e["organization_id"].(string)]
		if !ok {
			org = e["organization_id"].(string)
		}
		got = append(got, seen{e["action"].(string), a["type"].(string), a["name"].(string), a["address"].(string), a["user_agent"].(string), org, e["target_id"].(string)})
	}
	osName := osUser()
	byCLI := func(action, org, target string) seen { return seen{action, "cli", osName, "", "", org, target} }
	byAPI := func(action, org, target string) seen {
		return seen{action, "admin_key", "ci", "127.0.0.1", "audit-test-api/1", org, target}
	}
	byDev := func(action, org, target string) seen {
		return seen{action, "user", "dev@acme.test", "127.0.0.1", "audit-test-dev/1", org, target}
	}
	byOwner := func(action, org, target string) seen {
		return seen{action, "user", "owner@acme.test", "127.0.0.1", "audit-test-browser/1", org, target}
	}
	byStranger := func(action string) seen {
		return seen{action, "user", "nobody@acme.test", "127.0.0.1", "audit-test-stranger/1", "", ""}
	}
	want := []seen{
		byCLI("organization.created", "acme", acme.ID),
		byCLI("member.added", "acme", owner.ID),
		byCLI("admin_key.created", "", keyIDs["ci"]),
		byCLI("admin_key.created", "", keyIDs["spare"]),
		byCLI("admin_key.created", "", keyIDs["to-revoke-by-api"]),
		byCLI("token.created", "acme", cliTokenID),
		byCLI("invitation.created", "acme", cliInvitationID),
		byCLI("admin_key.revoked", "", keyIDs["spare"]),
		byCLI("token.rotated", "acme", cliTokenID),
		byCLI("token.deleted", "acme", cliTokenID),
		byCLI("invitation.revoked", "acme", cliInvitationID),
		byAPI("token.created", "acme", id(tok)),
		byAPI("token.rotated", "acme", id(tok)),
		byAPI("token.deleted", "acme", id(tok)),
		byAPI("member.added", "acme", dev.ID),
		byAPI("member.role_changed", "acme", dev.ID),
		byAPI("member.removed", "acme", dev.ID),
		byAPI("invitation.created", "acme", id(lost)),
		byAPI("invitation.revoked", "acme", id(lost)),
		byAPI("invitation.created", "acme", id(apiInvitation)),
		byAPI("plan.changed", "acme", acme.ID),
		byAPI("settings.changed", "acme", acme.ID),
		byAPI("settings.changed", "acme", acme.ID),
		byAPI("webhook.created", "acme", id(hook)),
		byAPI("webhook.changed", "acme", id(hook)),
		byAPI("webhook.deleted", "acme", id(hook)),
		byAPI("organization.created", "beta", id(beta)),
		byAPI("organization.deleted", "beta", id(beta)),
		byAPI("admin_key.revoked", "", keyIDs["to-revoke-by-api"]),
		byDev("login.succeeded", "", dev.ID),
		byDev("invitation.accepted", "acme", id(apiInvitation)),
		byDev("member.added", "acme", dev.ID),
		byAPI("invitation.created", "acme", id(declined)),
		byDev("invitation.revoked", "acme", id(declined)),
		byOwner("login.failed", "", owner.ID),
		byOwner("login.succeeded", "", owner.ID),
		byOwner("token.created", "acme", dashTokenID),
		byOwner("token.rotated", "acme", dashTokenID),
		byOwner("token.deleted", "acme", dashTokenID),
		byOwner("invitation.created", "acme", goneID),
		byOwner("invitation.revoked", "acme", goneID),
		byOwner("member.role_changed", "acme", dev.ID),
		byOwner("member.removed", "acme", dev.ID),
		byOwner("invitation.created", "acme", dashInvitationID),
		byDev("invitation.accepted", "acme", dashInvitationID),
		byDev("member.added", "acme", dev.ID),
		byOwner("webhook.created", "acme", dashHookID),
		byOwner("webhook.changed", "acme", dashHookID),
		byOwner("webhook.deleted", "acme", dashHookID),
		byOwner("settings.changed", "acme", acme.ID),
		byOwner("plan.changed", "acme", acme.ID),
		byOwner("settings.changed", "acme", acme.ID),
		byOwner("organization.created", "gamma", gamma.ID),
		byOwner("organization.deleted", "gamma", gamma.ID),
		byOwner("oauth_grant.approved", "acme", grantIDs[0]),
		byOwner("oauth_grant.approved", "acme", grantIDs[1]),
		byOwner("oauth_grant.revoked", "acme", grantIDs[0]),
		byAPI("oauth_grant.revoked", "acme", grantIDs[1]),
		byStranger("login.failed"), byStranger("login.failed"), byStranger("login.failed"),
		byStranger("login.failed"), byStranger("login.failed"), byStranger("login.throttled"),
		{"token.expired", "system", "", "", "", "acme", expired.ID},
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w seen
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}

	// No secret anywhere in the log, as the API or the CLI shows it, nor
	// in the audit_log rows of the database file.
	cliList := cli("audit", "list", "--limit", "200")
	rows, err := raw.ListAuditEntries(ctx, keygate.AuditFilter{Limit: keygate.MaxAuditPage})
	if err != nil {
		t.Fatal(err)
	}
	rowsJSON, _ := json.Marshal(rows)
	for _, body := range []string{string(rawLog), cliList, string(rowsJSON)} {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Fatalf("a secret (%.6s…) appears in the audit log:\n%s", s, body)
			}
		}
	}
	if !strings.Contains(cliList, "member.role_changed") || !strings.Contains(cliList, "admin_key:ci") {
		t.Errorf("keygate audit list:\n%s", cliList)
	}
	// The organization's own view leaves out site-wide entries.
	orgPage := call("GET", "/api/v1/orgs/acme/audit-log?action=token.created", "", 200)
	if n := len(orgPage["entries"].([]any)); n != 3 {
		t.Errorf("organization log, token.created: %d entries, want 3", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
