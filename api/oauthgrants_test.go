package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
)

const mcpResource = "https://api.example.com/mcp"

// connected is a grant stored as the token endpoint stores one, with its
// access token.
type connected struct {
	grant       *keygate.OAuthGrant
	accessToken string
}

// connect stores what approving clientID for org as u and redeeming the
// code leaves: the grant, an access token for an hour and a refresh token
// for 30 days.
func (f *fixture) connect(clientID, clientName string, u *keygate.User, org *keygate.Organization) connected {
	f.t.Helper()
	ctx := context.Background()
	now := f.now.Truncate(time.Millisecond)
	code := &keygate.OAuthCode{
		Hash: keygate.HashToken(keygate.GenerateTokenSecret("kgo_ac_")), GrantID: keygate.NewID("ogr"), ClientID: clientID,
		UserID: u.ID, OrganizationID: org.ID, CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Resource: mcpResource, Scopes: []string{"products:read"}, CreatedAt: now, ExpiresAt: now.Add(time.Minute),
	}
	if err := f.store.CreateOAuthCode(ctx, code); err != nil {
		f.t.Fatal(err)
	}
	access := keygate.GenerateTokenSecret("kgo_at_")
	g := &keygate.OAuthGrant{ID: code.GrantID, ClientID: clientID, ClientName: clientName, UserID: u.ID,
		OrganizationID: org.ID, Resource: mcpResource, Scopes: code.Scopes, CreatedAt: now}
	err := f.store.RedeemOAuthCode(ctx, code.Hash, now, g,
		&keygate.OAuthToken{Hash: keygate.HashToken(access), Kind: keygate.OAuthAccessToken, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		&keygate.OAuthToken{Hash: keygate.HashToken(keygate.GenerateTokenSecret("kgo_rt_")), Kind: keygate.OAuthRefreshToken, CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)})
	if err != nil {
		f.t.Fatal(err)
	}
	return connected{grant: g, accessToken: access}
}

// mcpStatus sends an MCP request with the access token to an endpoint
// guarded by keygate's authorization server on the fixture's store, and
// returns the status.
func (f *fixture) mcpStatus(accessToken string) int {
	f.t.Helper()
	srv, err := oauth.New(oauth.Config{
		Store: f.store, Sessions: f.sessions, Issuer: "https://keygate.example.com",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return f.now },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	api := &keygate.API{Name: "menus", MCP: &keygate.MCPEndpoint{Path: "/mcp", Scopes: []string{"products:read"}}}
	guard := srv.ProtectMCP(api, mcpResource, func(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
		w.WriteHeader(http.StatusOK)
	}, nil, nil)
	req := httptest.NewRequest("POST", mcpResource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+accessToken)
	rec := httptest.NewRecorder()
	guard.ServeHTTP(rec, req)
	return rec.Code
}

type oauthGrantBody struct {
	ID              string     `json:"id"`
	ClientID        string     `json:"client_id"`
	ClientName      string     `json:"client_name"`
	ClientHost      string     `json:"client_host"`
	RedirectHosts   []string   `json:"redirect_hosts"`
	Organization    string     `json:"organization"`
	UserID          string     `json:"user_id"`
	UserEmail       string     `json:"user_email"`
	Resource        string     `json:"resource"`
	Scopes          []string   `json:"scopes"`
	CreatedAt       time.Time  `json:"created_at"`
	LastRefreshedAt *time.Time `json:"last_refreshed_at"`
	ExpiresAt       time.Time  `json:"expires_at"`
}

func (f *fixture) listGrants(c caller, path string) []string {
	f.t.Helper()
	var body struct {
		Grants []oauthGrantBody `json:"oauth_grants"`
	}
	f.do(c, "GET", path, "").expect(http.StatusOK, &body)
	var ids []string
	for _, g := range body.Grants {
		ids = append(ids, g.ID)
	}
	return ids
}

func TestOAuthGrantsOfAnOrganization(t *testing.T) {
	f := newFixture(t)
	registered := &keygate.OAuthClient{Name: "Editor", RedirectURIs: []string{"http://127.0.0.1:33418/callback"},
		TokenEndpointAuthMethod: keygate.OAuthAuthNone, Source: keygate.OAuthClientRegistered}
	if err := f.store.CreateOAuthClient(context.Background(), registered); err != nil {
		t.Fatal(err)
	}
	mine := f.connect("https://claude.example/oauth/client.json", "Claude", f.member, f.acme)
	f.now = f.now.Add(time.Second)
	owners := f.connect(registered.ID, "Editor", f.owner, f.acme)
	globex := f.connect(registered.ID, "Editor", f.globexOwner, f.globex)
	member, owner, outsider := f.login(f.member), f.login(f.owner), f.login(f.globexOwner)

	var body struct {
		Grants []oauthGrantBody `json:"oauth_grants"`
	}
	f.do(member, "GET", "/api/v1/orgs/acme/oauth-grants", "").expect(http.StatusOK, &body)
	if len(body.Grants) != 1 {
		t.Fatalf("a member lists %d grants, want only their own", len(body.Grants))
	}
	got, g := body.Grants[0], mine.grant
	if got.ID != g.ID || got.ClientID != g.ClientID || got.ClientName != "Claude" || got.ClientHost != "claude.example" ||
		len(got.RedirectHosts) != 0 || got.RedirectHosts == nil || got.Organization != "acme" || got.UserID != f.member.ID ||
		got.UserEmail != "member@acme.test" || got.Resource != mcpResource || !slices.Equal(got.Scopes, []string{"products:read"}) ||
		!got.CreatedAt.Equal(g.CreatedAt) || got.LastRefreshedAt != nil || !got.ExpiresAt.Equal(g.CreatedAt.Add(30*24*time.Hour)) {
		t.Errorf("listed %+v", got)
	}
	if want := []string{owners.grant.ID, mine.grant.ID}; !slices.Equal(f.listGrants(owner, "/api/v1/orgs/acme/oauth-grants"), want) ||
		!slices.Equal(f.listGrants(f.key(), "/api/v1/orgs/acme/oauth-grants"), want) {
		t.Errorf("owner or admin key do not list every grant of acme, newest first")
	}
	f.do(owner, "GET", "/api/v1/orgs/acme/oauth-grants", "").expect(http.StatusOK, &body)
	if body.Grants[0].ClientHost != "" || !slices.Equal(body.Grants[0].RedirectHosts, []string{"127.0.0.1:33418"}) {
		t.Errorf("registered client listed with hosts %q, %q", body.Grants[0].ClientHost, body.Grants[0].RedirectHosts)
	}
	f.do(outsider, "GET", "/api/v1/orgs/acme/oauth-grants", "").expectError(http.StatusNotFound, "not_found", `Organization "acme" not found.`)

	// Nobody reaches a grant they may not see.
	f.do(member, "DELETE", "/api/v1/orgs/acme/oauth-grants/"+owners.grant.ID, "").
		expectError(http.StatusNotFound, "not_found", `Connected app "`+owners.grant.ID+`" not found.`)
	f.do(outsider, "DELETE", "/api/v1/orgs/globex/oauth-grants/"+mine.grant.ID, "").
		expectError(http.StatusNotFound, "not_found", `Connected app "`+mine.grant.ID+`" not found.`)
	f.do(outsider, "DELETE", "/api/v1/orgs/acme/oauth-grants/"+mine.grant.ID, "").expectError(http.StatusNotFound, "not_found", "")
	noCSRF := member
	noCSRF.csrf = ""
	f.do(noCSRF, "DELETE", "/api/v1/orgs/acme/oauth-grants/"+mine.grant.ID, "").expectError(http.StatusForbidden, "forbidden", "")
	for _, c := range []connected{mine, owners, globex} {
		if status := f.mcpStatus(c.accessToken); status != http.StatusOK {
			t.Fatalf("MCP call with a grant nobody revoked: %d", status)
		}
	}

	// The owner revokes the member's: its access token is refused at once.
	f.do(owner, "DELETE", "/api/v1/orgs/acme/oauth-grants/"+mine.grant.ID, "").expect(http.StatusNoContent, nil)
	if status := f.mcpStatus(mine.accessToken); status != http.StatusUnauthorized {
		t.Fatalf("MCP call after revoking: %d, want 401", status)
	}
	if !slices.Equal(f.listGrants(owner, "/api/v1/orgs/acme/oauth-grants"), []string{owners.grant.ID}) {
		t.Error("a revoked grant is still listed")
	}
	f.do(owner, "DELETE", "/api/v1/orgs/acme/oauth-grants/"+mine.grant.ID, "").expectError(http.StatusNotFound, "not_found", "")
	// An admin key revokes any.
	f.do(f.key(), "DELETE", "/api/v1/orgs/globex/oauth-grants/"+globex.grant.ID, "").expect(http.StatusNoContent, nil)
	if status := f.mcpStatus(globex.accessToken); status != http.StatusUnauthorized {
		t.Fatalf("MCP call after the admin key revoked: %d, want 401", status)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "oauth grant revoked") || !strings.Contains(logs, mine.grant.ID) ||
		strings.Contains(logs, mine.accessToken) {
		t.Errorf("revocation logged wrongly:\n%s", logs)
	}
}

func TestOAuthGrantsOfTheCaller(t *testing.T) {
	f := newFixture(t)
	// The member belongs to globex too.
	if err := f.store.SetMembership(context.Background(), &keygate.Membership{OrganizationID: f.globex.ID, UserID: f.member.ID, Role: keygate.RoleMember}); err != nil {
		t.Fatal(err)
	}
	inAcme := f.connect("kgc_one", "One", f.member, f.acme)
	f.now = f.now.Add(time.Second)
	inGlobex := f.connect("kgc_two", "Two", f.member, f.globex)
	owners := f.connect("kgc_one", "One", f.owner, f.acme)
	member := f.login(f.member)

	if got, want := f.listGrants(member, "/api/v1/me/oauth-grants"), []string{inGlobex.grant.ID, inAcme.grant.ID}; !slices.Equal(got, want) {
		t.Errorf("the member's own grants: %v, want %v", got, want)
	}
	f.do(f.key(), "GET", "/api/v1/me/oauth-grants", "").expectError(http.StatusForbidden, "forbidden",
		"Only a logged-in user has connected apps of their own; an admin key sees an organization's.")
	f.do(f.key(), "DELETE", "/api/v1/me/oauth-grants/"+inAcme.grant.ID, "").expectError(http.StatusForbidden, "forbidden", "")
	f.do(anonymous, "GET", "/api/v1/me/oauth-grants", "").expectError(http.StatusUnauthorized, "unauthorized", "")

	f.do(member, "DELETE", "/api/v1/me/oauth-grants/"+owners.grant.ID, "").
		expectError(http.StatusNotFound, "not_found", `Connected app "`+owners.grant.ID+`" not found.`)
	noCSRF := member
	noCSRF.csrf = ""
	f.do(noCSRF, "DELETE", "/api/v1/me/oauth-grants/"+inGlobex.grant.ID, "").expectError(http.StatusForbidden, "forbidden", "")
	if status := f.mcpStatus(owners.accessToken); status != http.StatusOK {
		t.Fatalf("another user's grant stopped working: %d", status)
	}

	f.do(member, "DELETE", "/api/v1/me/oauth-grants/"+inGlobex.grant.ID, "").expect(http.StatusNoContent, nil)
	if status := f.mcpStatus(inGlobex.accessToken); status != http.StatusUnauthorized {
		t.Fatalf("MCP call after revoking: %d, want 401", status)
	}
	if status := f.mcpStatus(inAcme.accessToken); status != http.StatusOK {
		t.Fatalf("the other grant stopped working: %d", status)
	}
	if got := f.listGrants(member, "/api/v1/me/oauth-grants"); !slices.Equal(got, []string{inAcme.grant.ID}) {
		t.Errorf("after revoking: %v", got)
	}
}
