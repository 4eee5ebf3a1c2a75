package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/session"
)

// mcpServer is keygate's authorization server and one guarded MCP
// endpoint on the fixture's store, as the server wires them beside the
// dashboard. Requests it lets through are counted, not forwarded.
type mcpServer struct {
	f         *fixture
	issuer    string
	resource  string // the MCP endpoint's URL
	forwarded atomic.Int32
}

func (f *fixture) mcpServer() *mcpServer {
	f.t.Helper()
	m := &mcpServer{f: f}
	admin := httptest.NewUnstartedServer(nil)
	m.issuer = "http://" + admin.Listener.Addr().String()
	srv, err := oauth.New(oauth.Config{
		Store:    f.store,
		Sessions: &session.Manager{Sessions: f.store, Users: f.store, Now: func() time.Time { return f.now }},
		Issuer:   m.issuer,
		Logger:   slog.New(slog.NewTextHandler(f.logs, nil)),
		Now:      func() time.Time { return f.now },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	admin.Config.Handler = srv.Handler()
	admin.Start()
	f.t.Cleanup(admin.Close)

	api := httptest.NewUnstartedServer(nil)
	m.resource = "http://" + api.Listener.Addr().String() + "/mcp"
	menus := &keygate.API{Name: "menus", MCP: &keygate.MCPEndpoint{Path: "/mcp", Scopes: []string{"products:read"}}}
	api.Config.Handler = srv.ProtectMCP(menus, m.resource, func(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
		m.forwarded.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}, nil, nil)
	api.Start()
	f.t.Cleanup(api.Close)
	return m
}

const appRedirectURI = "http://127.0.0.1:33418/callback"

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// connect runs what an MCP client and its user do: the client registers
// as clientName, the user logs in on keygate's page as u and approves the
// client for org, and the client redeems the code. It returns the tokens.
func (m *mcpServer) connect(clientName string, u *keygate.User, org *keygate.Organization) *oauth2.Token {
	t := m.f.t
	t.Helper()
	reg, _ := json.Marshal(map[string]any{
		"client_name": clientName, "redirect_uris": []string{appRedirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
	})
	resp, err := http.Post(m.issuer+oauth.PathRegister, "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&client)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || client.ClientID == "" {
		t.Fatalf("register: %d", resp.StatusCode)
	}

	cfg := m.oauth2Config(client.ClientID)
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", m.resource)
	authURL := cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), resource)

	// The user's browser: keygate's login page, then the consent page.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, target string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, target, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	hidden := func(body string) url.Values {
		out := url.Values{}
		for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
			if !out.Has(m[1]) {
				out.Set(m[1], html.UnescapeString(m[2]))
			}
		}
		return out
	}
	_, login := send("GET", authURL, nil)
	form := hidden(login)
	form.Set("email", u.Email)
	form.Set("password", testPassword)
	resp, _ = send("POST", m.issuer+oauth.PathLogin, form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login on keygate's page: %d", resp.StatusCode)
	}
	next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
	resp, consent := send("GET", next.String(), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(consent, html.EscapeString(clientName)) {
		t.Fatalf("consent page: %d\n%s", resp.StatusCode, consent)
	}
	form = hidden(consent)
	form.Set("organization", org.ID)
	form.Set("decision", "approve")
	resp, _ = send("POST", m.issuer+oauth.PathAuthorize, form)
	back, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || back.Query().Get("code") == "" {
		t.Fatalf("approve: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	tok, err := cfg.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok
}

func (m *mcpServer) oauth2Config(clientID string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, RedirectURL: appRedirectURI, Scopes: []string{"products:read"},
		Endpoint: oauth2.Endpoint{AuthURL: m.issuer + oauth.PathAuthorize, TokenURL: m.issuer + oauth.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
}

// call sends an MCP request with the access token and returns the status
// and WWW-Authenticate.
func (m *mcpServer) call(accessToken string) (int, string) {
	m.f.t.Helper()
	req, _ := http.NewRequest("POST", m.resource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// grantOf returns the one active grant u made for org.
func (f *fixture) grantOf(u *keygate.User, org *keygate.Organization) *keygate.OAuthGrant {
	f.t.Helper()
	grants, err := f.store.ListOAuthGrants(context.Background(), keygate.OAuthGrantFilter{UserID: u.ID, OrganizationID: org.ID})
	if err != nil || len(grants) != 1 {
		f.t.Fatalf("grants of %s: %v %v", u.Email, grants, err)
	}
	return grants[0]
}

func TestConnectedAppRevokedOnThePageLosesMCPAccess(t *testing.T) {
	f := newFixture(t)
	m := f.mcpServer()
	tok := m.connect("Claude Test", f.member, f.acme)
	if status, _ := m.call(tok.AccessToken); status != http.StatusOK || m.forwarded.Load() != 1 {
		t.Fatalf("MCP call before revoking: %d", status)
	}
	g := f.grantOf(f.member, f.acme)
	revokePath := "/orgs/acme/connected-apps/" + g.ID + "/revoke"

	b := f.browser()
	b.login(f.member)
	b.get("/orgs/acme/tokens").expect(t, http.StatusOK, `<a href="/orgs/acme/connected-apps">Connected apps</a>`)
	b.get("/orgs/acme/connected-apps").expect(t, http.StatusOK,
		"Claude Test", "returns to 127.0.0.1:33418", `title="MCP endpoint `+m.resource+`"`, `<span class="scope">products:read</span>`,
		`<time datetime="`+g.CreatedAt.Format(time.RFC3339)+`"`,
		`<time datetime="`+f.now.Add(oauth.DefaultRefreshTokenTTL).UTC().Format(time.RFC3339)+`"`,
		`href="`+revokePath+`" aria-label="Revoke access for Claude Test">Revoke</a>`,
		`aria-current="page">Connected apps</a>`).
		lacks(t, "Approved by", tok.AccessToken, tok.RefreshToken)

	// Following the link only asks.
	confirm := b.get(revokePath).expect(t, http.StatusOK,
		"Revoke access for “Claude Test”?", "its next request is refused", "member@acme.test",
		`<button type="submit" class="button button-danger">Revoke access</button>`)
	if status, _ := m.call(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("the confirmation page revoked access: MCP answered %d", status)
	}
	// A forged POST without the CSRF token is refused.
	b.post(revokePath, url.Values{}).expect(t, http.StatusForbidden, "This form has expired or did not come from keygate.")
	if status, _ := m.call(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("revoked without the CSRF token: MCP answered %d", status)
	}

	done := b.post(revokePath, url.Values{"csrf_token": {field(t, csrfField, confirm.Body)}}).expect(t, http.StatusOK,
		"Access revoked: “Claude Test” can no longer use the MCP endpoint.", "No connected apps")
	if done.Request.URL.Path != "/orgs/acme/connected-apps" {
		t.Errorf("after revoking at %s", done.Request.URL)
	}

	// The access token is refused on the very next request, and the
	// refresh token no longer gets a new one.
	status, challenge := m.call(tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
		!strings.Contains(challenge, `error_description="The access token was revoked."`) {
		t.Fatalf("MCP call after revoking: %d %s", status, challenge)
	}
	if m.forwarded.Load() != 3 {
		t.Errorf("%d requests reached the MCP server, want the 3 made before revoking", m.forwarded.Load())
	}
	expired := *tok
	expired.Expiry = f.now.Add(-time.Minute)
	_, err := m.oauth2Config(g.ClientID).TokenSource(context.Background(), &expired).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("refresh after revoking: %v, want invalid_grant", err)
	}

	b.get(revokePath).expect(t, http.StatusNotFound)
	b.post(revokePath, url.Values{"csrf_token": {field(t, csrfField, confirm.Body)}}).expect(t, http.StatusNotFound)
	logs := f.logs.String()
	if !strings.Contains(logs, "oauth grant revoked") || !strings.Contains(logs, g.ID) {
		t.Errorf("revocation not logged by grant id:\n%s", logs)
	}
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
		if strings.Contains(logs, secret) {
			t.Fatal("a token is in the logs")
		}
	}
}

func TestConnectedAppsOthersCannotSeeOrRevoke(t *testing.T) {
	f := newFixture(t)
	m := f.mcpServer()
	tok := m.connect("Claude Test", f.member, f.acme)
	g := f.grantOf(f.member, f.acme)
	revokePath := "/orgs/acme/connected-apps/" + g.ID + "/revoke"

	// Another member of the same organization sees only their own.
	colleague := f.user("colleague@acme.test", false, f.acme, keygate.RoleMember)
	cb := f.browser()
	ccsrf := cb.login(colleague)
	cb.get("/orgs/acme/connected-apps").expect(t, http.StatusOK, "No connected apps").lacks(t, "Claude Test")
	cb.get(revokePath).expect(t, http.StatusNotFound, "Connected app &#34;"+g.ID+"&#34; not found.")
	cb.post(revokePath, url.Values{"csrf_token": {ccsrf}}).expect(t, http.StatusNotFound)

	// Another organization's owner reaches neither the organization nor,
	// through their own, the grant.
	gb := f.browser()
	gcsrf := gb.login(f.globexOwner)
	gb.get("/orgs/acme/connected-apps").expect(t, http.StatusNotFound)
	gb.post(revokePath, url.Values{"csrf_token": {gcsrf}}).expect(t, http.StatusNotFound)
	gb.get("/orgs/globex/connected-apps/"+g.ID+"/revoke").expect(t, http.StatusNotFound)
	gb.post("/orgs/globex/connected-apps/"+g.ID+"/revoke", url.Values{"csrf_token": {gcsrf}}).expect(t, http.StatusNotFound)
	// Nor does the notice after a revocation name it.
	gb.get("/orgs/globex/connected-apps?revoked="+g.ID).expect(t, http.StatusOK).lacks(t, "Claude Test")

	if status, _ := m.call(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("someone without the right revoked it: MCP answered %d", status)
	}
	if got, _ := f.store.FindOAuthGrant(context.Background(), g.ID); !got.Active() {
		t.Fatal("grant revoked")
	}
}

func TestConnectedAppsOwnerRevokesAMembersApp(t *testing.T) {
	f := newFixture(t)
	m := f.mcpServer()
	tok := m.connect("Member's editor", f.member, f.acme)
	g := f.grantOf(f.member, f.acme)

	b := f.browser()
	b.login(f.owner)
	b.get("/orgs/acme/connected-apps").expect(t, http.StatusOK,
		"Approved by", "Member&#39;s editor", "member@acme.test", "As an owner you see every member's apps")
	confirm := b.get("/orgs/acme/connected-apps/"+g.ID+"/revoke").expect(t, http.StatusOK, "Revoke access for “Member&#39;s editor”?")
	b.post("/orgs/acme/connected-apps/"+g.ID+"/revoke", url.Values{"csrf_token": {field(t, csrfField, confirm.Body)}}).
		expect(t, http.StatusOK, "Access revoked: “Member&#39;s editor”")
	if status, _ := m.call(tok.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("MCP call after the owner revoked: %d", status)
	}
}

// Removing a member revokes the OAuth grants they made for the
// organization: their MCP client is refused on its next request, and
// adding them back does not bring its access back without a new consent.
func TestRemovedMemberLosesMCPAccessForGood(t *testing.T) {
	f := newFixture(t)
	m := f.mcpServer()
	tok := m.connect("Claude Test", f.member, f.acme)
	if status, _ := m.call(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("MCP call before removal: %d", status)
	}
	g := f.grantOf(f.member, f.acme)

	owner := f.browser()
	csrf := owner.login(f.owner)
	owner.post("/orgs/acme/members/"+f.member.ID+"/remove", url.Values{"csrf_token": {csrf}}).
		expect(t, http.StatusOK, "Member removed.")
	if status, _ := m.call(tok.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("MCP call after removal: %d", status)
	}
	stored, err := f.store.FindOAuthGrant(context.Background(), g.ID)
	if err != nil || stored.RevokedAt == nil {
		t.Fatalf("grant after removal: %+v %v", stored, err)
	}

	// Back in the organization, the old client stays locked out.
	if err := f.store.SetMembership(context.Background(), &keygate.Membership{OrganizationID: f.acme.ID, UserID: f.member.ID, Role: keygate.RoleMember, CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	status, challenge := m.call(tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, "The access token was revoked.") {
		t.Fatalf("MCP call after adding the member back: %d %s", status, challenge)
	}
	expired := *tok
	expired.Expiry = f.now.Add(-time.Minute)
	_, err = m.oauth2Config(g.ClientID).TokenSource(context.Background(), &expired).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("refresh after adding the member back: %v, want invalid_grant", err)
	}
}
