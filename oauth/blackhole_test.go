package oauth_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/session"
)

// A PostgreSQL that stops answering (connections open, nothing coming
// back) does not hold MCP requests: each read that checks an access token
// runs under the store timeout, so the client gets 503
// temporarily_unavailable within it even though its own request has no
// deadline; when the database answers again the same token works, without
// a restart.
func TestAccessTokenCheckIsBoundedWhenTheDatabaseStopsAnswering(t *testing.T) {
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)

	const resource = "https://api.example.com/mcp"
	access := issueAccessToken(t, st, resource)
	const storeTimeout = 500 * time.Millisecond
	srv, err := oauth.New(oauth.Config{
		Store: st, Sessions: &session.Manager{Sessions: st, Users: st}, Issuer: "https://keygate.example.com",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: storeTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	api := &keygate.API{Name: "menus", MCP: &keygate.MCPEndpoint{Path: "/mcp", Scopes: []string{"products:read"}}}
	guard := srv.ProtectMCP(api, resource, func(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
		w.WriteHeader(http.StatusOK)
	}, nil, nil)
	call := func() error {
		req := httptest.NewRequest("POST", resource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+access)
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("%d %s", rec.Code, rec.Body)
		}
		return nil
	}
	// Three reads at most, each bounded; a margin for a loaded machine,
	// far below the minute a blackholed connection can hold a query.
	during, took := pgtest.Outage(t, proxy, 3*storeTimeout+time.Second, call)
	t.Logf("database blackholed, store timeout %v: the MCP request was answered %v after %v", storeTimeout, during, took.Round(time.Millisecond))
	if got := fmt.Sprint(during); !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"temporarily_unavailable"`) {
		t.Errorf("database not answering: %s, want 503 temporarily_unavailable", got)
	}
}

// issueAccessToken stores, as the token endpoint does, a user's grant to a
// client for resource and an access token under it, and returns the token.
func issueAccessToken(t *testing.T, st keygate.Store, resource string) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	user := &keygate.User{Email: "ada@example.com", Name: "Ada"}
	client := &keygate.OAuthClient{ID: "kgc_blackhole", Name: "Test client", RedirectURIs: []string{"http://127.0.0.1:1/cb"},
		TokenEndpointAuthMethod: keygate.OAuthAuthNone, Source: keygate.OAuthClientRegistered, CreatedAt: now}
	for what, err := range map[string]error{
		"CreateOrganization": st.CreateOrganization(ctx, org),
		"CreateUser":         st.CreateUser(ctx, user),
		"CreateOAuthClient":  st.CreateOAuthClient(ctx, client),
	} {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	if err := st.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleMember}); err != nil {
		t.Fatal(err)
	}
	code := &keygate.OAuthCode{Hash: keygate.HashToken("code"), GrantID: keygate.NewID("grt"), ClientID: client.ID, UserID: user.ID,
		OrganizationID: org.ID, Resource: resource, Scopes: []string{"products:read"}, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := st.CreateOAuthCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	access := keygate.GenerateTokenSecret("kgo_at_")
	grant := &keygate.OAuthGrant{ID: code.GrantID, ClientID: client.ID, ClientName: client.Name, UserID: user.ID,
		OrganizationID: org.ID, Resource: resource, Scopes: code.Scopes, CreatedAt: now}
	token := &keygate.OAuthToken{Hash: keygate.HashToken(access), GrantID: grant.ID, Kind: keygate.OAuthAccessToken,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.RedeemOAuthCode(ctx, code.Hash, now, grant, token); err != nil {
		t.Fatal(err)
	}
	return access
}
