package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
)

// TestAuthorizeRefusalsRedirect covers requests whose client and redirect
// URI are fine but which keygate refuses: the answer goes back to the
// client with the error, the state and the issuer (RFC 9207), before any
// login is asked for.
func TestAuthorizeRefusalsRedirect(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	verifier := oauth2.GenerateVerifier()
	tests := []struct {
		name  string
		extra url.Values
		error string
	}{
		{"no PKCE", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, "invalid_request"},
		{"plain PKCE", url.Values{"code_challenge": {verifier}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{"PKCE method omitted (plain by default)", url.Values{"code_challenge_method": {""}}, "invalid_request"},
		{"challenge not a SHA-256 digest", url.Values{"code_challenge": {"short"}}, "invalid_request"},
		{"implicit flow", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"unknown resource", url.Values{"resource": {"https://elsewhere.example.com/mcp"}}, "invalid_target"},
		{"resource with fragment", url.Values{"resource": {h.api().resource + "#x"}}, "invalid_target"},
		{"two resources", url.Values{"resource": {h.api().resource, h.api().resource}}, "invalid_request"},
		{"request object", url.Values{"request": {"eyJhbGciOiJub25lIn0.e30."}}, "request_not_supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBrowser(t).get(h.authURL(clientID, verifier, tt.extra))
			if p.status != http.StatusFound || p.location == nil {
				t.Fatalf("status %d, want 302 to the client; body %s", p.status, p.body)
			}
			q := p.location.Query()
			if got := p.location.Scheme + "://" + p.location.Host + p.location.Path; got != redirectURI {
				t.Errorf("redirected to %s, want %s", got, redirectURI)
			}
			if q.Get("error") != tt.error || q.Get("state") != "xyz" || q.Get("iss") != h.issuer || q.Has("code") {
				t.Errorf("redirect query %v, want error=%s, state=xyz, iss=%s and no code", q, tt.error, h.issuer)
			}
		})
	}
}

// TestAuthorizeRefusalsStayHere covers requests keygate must not redirect
// for: an unknown client or a redirect URI it did not register.
func TestAuthorizeRefusalsStayHere(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	localhostClient := h.registerPublic("http://localhost:33418/callback")
	verifier := oauth2.GenerateVerifier()
	tests := []struct {
		name     string
		clientID string
		extra    url.Values
		message  string
	}{
		{"unknown client", "kgc_unknown", nil, "not known to keygate"},
		{"no client", "", url.Values{"client_id": {""}}, "client_id parameter is missing"},
		{"other path", clientID, url.Values{"redirect_uri": {"http://127.0.0.1:33418/other"}}, "not one the application registered"},
		{"other host", clientID, url.Values{"redirect_uri": {"https://evil.example.com/callback"}}, "not one the application registered"},
		{"https instead of http", clientID, url.Values{"redirect_uri": {"https://127.0.0.1:33418/callback"}}, "not one the application registered"},
		{"extra query", clientID, url.Values{"redirect_uri": {redirectURI + "?x=1"}}, "not one the application registered"},
		{"localhost on another port", localhostClient, url.Values{"redirect_uri": {"http://localhost:9999/callback"}}, "not one the application registered"},
		{"repeated client_id", clientID, url.Values{"client_id": {clientID, clientID}}, "repeats client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBrowser(t).get(h.authURL(tt.clientID, verifier, tt.extra))
			if p.status != http.StatusBadRequest || p.location != nil {
				t.Fatalf("status %d, Location %v; want 400 and no redirect", p.status, p.location)
			}
			if !strings.Contains(p.body, tt.message) {
				t.Errorf("page does not say %q: %s", tt.message, p.body)
			}
			if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
				t.Errorf("page headers %v lack framing and caching protection", p.header)
			}
		})
	}
}

// TestLoopbackRedirectAnyPort: RFC 8252 §7.3 lets a loopback IP redirect
// URI use any port; the rest must match exactly.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic("http://127.0.0.1/callback")
	verifier := oauth2.GenerateVerifier()
	back := h.authorize(h.authURL(clientID, verifier, url.Values{"redirect_uri": {"http://127.0.0.1:54321/callback"}}), "")
	if back.Host != "127.0.0.1:54321" || back.Query().Get("code") == "" {
		t.Fatalf("redirected to %s, want http://127.0.0.1:54321/callback with a code", back)
	}
	status, body := h.exchange(clientID, back.Query().Get("code"), verifier, url.Values{"redirect_uri": {"http://127.0.0.1:54321/callback"}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
}

// TestTokenRefusals covers the token endpoint's negative cases.
func TestTokenRefusals(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	otherClient := h.registerPublic(redirectURI)
	apiToken := keygate.GenerateTokenSecret("cm_live_")

	t.Run("wrong verifier", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		code := h.codeFor(clientID, verifier)
		status, body := h.exchange(clientID, code, oauth2.GenerateVerifier(), nil)
		wantOAuthError(t, status, body, 400, "invalid_grant")
		// A wrong verifier does not burn the code for its rightful owner.
		status, body = h.exchange(clientID, code, verifier, nil)
		wantOAuthError(t, status, body, 200, "")
	})
	t.Run("no verifier", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		status, body := h.exchange(clientID, h.codeFor(clientID, verifier), verifier, url.Values{"code_verifier": {""}})
		wantOAuthError(t, status, body, 400, "invalid_grant")
	})
	t.Run("reused code revokes what it granted", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		code := h.codeFor(clientID, verifier)
		status, first := h.exchange(clientID, code, verifier, nil)
		wantOAuthError(t, status, first, 200, "")
		status, body := h.exchange(clientID, code, verifier, nil)
		wantOAuthError(t, status, body, 400, "invalid_grant")
		if p := call(t, h.api().resource, bearer(first["access_token"].(string))); p.status != http.StatusUnauthorized {
			t.Errorf("access token of a reused code: status %d, want 401", p.status)
		}
	})
	t.Run("spent code without its verifier revokes nothing", func(t *testing.T) {
		// Whoever saw the code in the redirect (history, a proxy's log)
		// but lacks the verifier could not have redeemed it, so a
		// second redemption of theirs proves no theft and must not cut
		// the rightful client off.
		verifier := oauth2.GenerateVerifier()
		code := h.codeFor(clientID, verifier)
		status, first := h.exchange(clientID, code, verifier, nil)
		wantOAuthError(t, status, first, 200, "")
		for _, extra := range []url.Values{
			{"code_verifier": {oauth2.GenerateVerifier()}},
			{"code_verifier": {""}},
			{"redirect_uri": {"http://127.0.0.1:33418/other"}},
		} {
			status, body := h.exchange(clientID, code, verifier, extra)
			wantOAuthError(t, status, body, 400, "invalid_grant")
		}
		if p := call(t, h.api().resource, bearer(first["access_token"].(string))); p.status != http.StatusOK {
			t.Errorf("access token after its code was replayed without the verifier: status %d, want 200", p.status)
		}
	})
	t.Run("wrong redirect_uri", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		status, body := h.exchange(clientID, h.codeFor(clientID, verifier), verifier, url.Values{"redirect_uri": {"http://127.0.0.1:33418/other"}})
		wantOAuthError(t, status, body, 400, "invalid_grant")
	})
	t.Run("expired code", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		code := h.codeFor(clientID, verifier)
		h.clock.Advance(61 * time.Second)
		status, body := h.exchange(clientID, code, verifier, nil)
		wantOAuthError(t, status, body, 400, "invalid_grant")
	})
	t.Run("code of another client", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		status, body := h.exchange(otherClient, h.codeFor(clientID, verifier), verifier, nil)
		wantOAuthError(t, status, body, 400, "invalid_grant")
	})
	t.Run("token for another resource than approved", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		status, body := h.exchange(clientID, h.codeFor(clientID, verifier), verifier, url.Values{"resource": {"https://elsewhere.example.com/mcp"}})
		wantOAuthError(t, status, body, 400, "invalid_target")
	})
	t.Run("made-up code", func(t *testing.T) {
		status, body := h.exchange(clientID, keygate.GenerateTokenSecret("kgo_ac_"), oauth2.GenerateVerifier(), nil)
		wantOAuthError(t, status, body, 400, "invalid_grant")
	})
	t.Run("API token exchanged for an OAuth token", func(t *testing.T) {
		status, body, _ := h.postForm(oauth.PathToken, url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {apiToken},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"client_id":          {clientID},
		}, "", "")
		wantOAuthError(t, status, body, 400, "unsupported_grant_type")
	})
	t.Run("API token as a refresh token", func(t *testing.T) {
		status, body, _ := h.postForm(oauth.PathToken, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {apiToken}, "client_id": {clientID},
		}, "", "")
		wantOAuthError(t, status, body, 400, "invalid_grant")
	})
	t.Run("refresh token of another client", func(t *testing.T) {
		// A refresh token is bound to its client: another client cannot
		// spend it, nor burn it for its owner.
		tok, cfg := h.oauth2Token("")
		status, body, _ := h.postForm(oauth.PathToken, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {otherClient},
		}, "", "")
		wantOAuthError(t, status, body, 400, "invalid_grant")
		status, body, _ = h.postForm(oauth.PathToken, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {cfg.ClientID},
		}, "", "")
		wantOAuthError(t, status, body, 200, "")
	})
	t.Run("client credentials", func(t *testing.T) {
		status, body, _ := h.postForm(oauth.PathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}, "", "")
		wantOAuthError(t, status, body, 400, "unsupported_grant_type")
	})
	t.Run("unknown client", func(t *testing.T) {
		status, body, _ := h.postForm(oauth.PathToken, url.Values{"grant_type": {"authorization_code"}, "client_id": {"kgc_unknown"}}, "", "")
		wantOAuthError(t, status, body, 401, "invalid_client")
	})
	t.Run("parameters in the query", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.issuer+oauth.PathToken+"?grant_type=authorization_code&client_id="+clientID, nil)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		status, body, _ := doJSON(t, req)
		wantOAuthError(t, status, body, 401, "invalid_client")
	})
}

// TestConcurrentRedemptions races token requests spending one credential,
// over HTTP against the SQLite file: one authorization code, or one
// refresh token, gives exactly one token set, and the losers' reuse
// revokes it (RFC 6749 sections 4.1.2 and 10.4).
func TestConcurrentRedemptions(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	const n = 8
	race := func(form url.Values) (won []map[string]any) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				status, body, _ := h.postForm(oauth.PathToken, form, "", "")
				mu.Lock()
				defer mu.Unlock()
				if status == http.StatusOK {
					won = append(won, body)
				} else {
					wantOAuthError(t, status, body, 400, "invalid_grant")
				}
			})
		}
		wg.Wait()
		return won
	}
	verifier := oauth2.GenerateVerifier()
	won := race(url.Values{
		"grant_type": {"authorization_code"}, "code": {h.codeFor(clientID, verifier)}, "client_id": {clientID},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "resource": {h.api().resource},
	})
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent redemptions of one code got tokens, want exactly 1", len(won), n)
	}
	if p := call(t, h.api().resource, bearer(won[0]["access_token"].(string))); p.status != http.StatusUnauthorized {
		t.Errorf("access token of a code redeemed concurrently: status %d, want 401 (revoked by the reuse)", p.status)
	}

	tok, cfg := h.oauth2Token("")
	won = race(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {cfg.ClientID}})
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent rotations of one refresh token got tokens, want exactly 1", len(won), n)
	}
	if p := call(t, h.api().resource, bearer(won[0]["access_token"].(string))); p.status != http.StatusUnauthorized {
		t.Errorf("access token of a refresh token rotated concurrently: status %d, want 401 (revoked by the reuse)", p.status)
	}
}

func wantOAuthError(t *testing.T, status int, body map[string]any, wantStatus int, wantError string) {
	t.Helper()
	got, _ := body["error"].(string)
	if status != wantStatus || got != wantError {
		t.Errorf("status %d, error %q (%v); want %d, %q", status, got, body["error_description"], wantStatus, wantError)
	}
}

// TestAccessTokenChecks covers what the MCP endpoint refuses.
func TestAccessTokenChecks(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) { o.secondAPI = true })
	menus, events := h.apis["cannmenus"], h.apis["canskan"]

	t.Run("token for another resource", func(t *testing.T) {
		tok, _ := h.oauth2Token("")
		p := call(t, events.resource, bearer(tok.AccessToken))
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "issued for another resource") {
			t.Errorf("status %d, body %s; want 401 for another resource", p.status, p.body)
		}
		if p := call(t, menus.resource, bearer(tok.AccessToken)); p.status != http.StatusOK {
			t.Errorf("same token on its own resource: status %d", p.status)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		tok, _ := h.oauth2Token("")
		h.clock.Advance(time.Hour)
		p := call(t, menus.resource, bearer(tok.AccessToken))
		if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), `error_description="The access token expired."`) {
			t.Errorf("status %d, WWW-Authenticate %q; want 401 expired", p.status, p.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("member removed from the organization", func(t *testing.T) {
		tok, _ := h.oauth2Token(h.org2.ID)
		h.must("DeleteMembership", h.store.DeleteMembership(h.ctx, h.org2.ID, h.user.ID))
		p := call(t, menus.resource, bearer(tok.AccessToken))
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "no longer a member") {
			t.Errorf("status %d, body %s; want 401, no longer a member", p.status, p.body)
		}
		h.must("SetMembership", h.store.SetMembership(h.ctx, &keygate.Membership{OrganizationID: h.org2.ID, UserID: h.user.ID, Role: keygate.RoleMember}))
	})
	t.Run("entitlements read at each request", func(t *testing.T) {
		tok, _ := h.oauth2Token(h.org.ID)
		org := *h.org
		org.Entitlements.States = []string{"Nevada"}
		h.must("UpdateOrganization", h.store.UpdateOrganization(h.ctx, &org))
		if p := call(t, menus.resource, bearer(tok.AccessToken)); p.status != http.StatusOK {
			t.Fatalf("status %d", p.status)
		}
		if got := h.upstream.last(t).Header.Get(identityHeader); !strings.Contains(got, `"states":["Nevada"]`) {
			t.Errorf("identity %s does not carry the organization's new entitlements", got)
		}
		h.must("UpdateOrganization", h.store.UpdateOrganization(h.ctx, h.org))
	})
	t.Run("malformed bearer", func(t *testing.T) {
		for _, token := range []string{"kgo_at_short", keygate.GenerateTokenSecret("kgo_rt_"), "cm_live_whatever"} {
			if p := call(t, menus.resource, bearer(token)); p.status != http.StatusUnauthorized ||
				!strings.Contains(p.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("bearer %.10s…: status %d, WWW-Authenticate %q; want 401 invalid_token", token, p.status, p.header.Get("WWW-Authenticate"))
			}
		}
	})
}

// TestInsufficientScope: a token without every scope of the endpoint gets
// 403 naming all of them, so the client can step up in one go.
func TestInsufficientScope(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	verifier := oauth2.GenerateVerifier()
	back := h.authorize(h.authURL(clientID, verifier, url.Values{"scope": {"products:read"}}), "")
	status, body := h.exchange(clientID, back.Query().Get("code"), verifier, nil)
	if status != http.StatusOK || body["scope"] != "products:read" {
		t.Fatalf("exchange: %d %v, want scope products:read", status, body)
	}
	p := call(t, h.api().resource, bearer(body["access_token"].(string)))
	metadataURL := strings.TrimSuffix(h.api().resource, "/mcp") + "/.well-known/oauth-protected-resource/mcp"
	want := `Bearer error="insufficient_scope", scope="products:read dispensaries:read", resource_metadata="` + metadataURL +
		`", error_description="This MCP endpoint needs the scopes products:read dispensaries:read."`
	if p.status != http.StatusForbidden || p.header.Get("WWW-Authenticate") != want {
		t.Errorf("status %d, WWW-Authenticate %q; want 403, %q", p.status, p.header.Get("WWW-Authenticate"), want)
	}
	if h.upstream.count() != 0 {
		t.Error("a request without the scopes reached the upstream")
	}
}

func TestRevocation(t *testing.T) {
	h := newHarness(t)
	tok, cfg := h.oauth2Token("")
	other := h.registerPublic(redirectURI)

	// Another client cannot revoke it; unknown tokens are fine (RFC 7009).
	for _, form := range []url.Values{
		{"token": {tok.RefreshToken}, "client_id": {other}},
		{"token": {"kgo_rt_unknown"}, "client_id": {cfg.ClientID}},
	} {
		status, body, _ := h.postForm(oauth.PathRevoke, form, "", "")
		if status != http.StatusOK {
			t.Errorf("revoke %v: %d %v, want 200", form, status, body)
		}
	}
	if p := call(t, h.api().resource, bearer(tok.AccessToken)); p.status != http.StatusOK {
		t.Fatalf("after revocations that must not apply: status %d", p.status)
	}
	status, body, _ := h.postForm(oauth.PathRevoke, url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {cfg.ClientID}}, "", "")
	if status != http.StatusOK {
		t.Fatalf("revoke: %d %v", status, body)
	}
	if p := call(t, h.api().resource, bearer(tok.AccessToken)); p.status != http.StatusUnauthorized {
		t.Errorf("access token after revoking its refresh token: status %d, want 401", p.status)
	}
	grants, err := h.store.ListOAuthGrants(h.ctx, keygate.OAuthGrantFilter{UserID: h.user.ID, IncludeRevoked: true})
	h.must("ListOAuthGrants", err)
	if len(grants) != 1 || grants[0].RevokedAt == nil || grants[0].ClientName != "Test MCP client" {
		t.Errorf("grants %+v, want one revoked grant of Test MCP client", grants)
	}
}

// TestAPITokenOnMCP: clients without OAuth may use the API's token header
// when the API allows it.
func TestAPITokenOnMCP(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) { o.apiTokens = true })
	a := h.api()
	p := call(t, a.resource, http.Header{"X-Token": {"cm_live_good"}})
	if p.status != http.StatusOK || !strings.Contains(h.upstream.last(t).Header.Get(identityHeader), `"token_id":"tok_good"`) {
		t.Errorf("good API token: status %d", p.status)
	}
	for token, want := range map[string]string{"cm_live_bad": "Invalid API token.", "cm_live_expired": "API token has expired."} {
		p := call(t, a.resource, http.Header{"X-Token": {token}})
		if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), `error_description="`+want+`"`) {
			t.Errorf("%s: status %d, WWW-Authenticate %q", token, p.status, p.header.Get("WWW-Authenticate"))
		}
	}
	// An API token needs the endpoint's scopes as an OAuth token does.
	metadataURL := strings.TrimSuffix(a.resource, "/mcp") + "/.well-known/oauth-protected-resource/mcp"
	want := `Bearer error="insufficient_scope", scope="products:read dispensaries:read", resource_metadata="` + metadataURL +
		`", error_description="This MCP endpoint needs the scopes products:read dispensaries:read."`
	before := h.upstream.count()
	if p := call(t, a.resource, http.Header{"X-Token": {"cm_live_narrow"}}); p.status != http.StatusForbidden || p.header.Get("WWW-Authenticate") != want ||
		p.body != `{"error":"insufficient_scope","error_description":"This MCP endpoint needs the scopes products:read dispensaries:read."}
` {
		t.Errorf("API token without the scopes: %d %q %s; want 403, %q", p.status, p.header.Get("WWW-Authenticate"), p.body, want)
	}
	if h.upstream.count() != before {
		t.Error("an API token without the endpoint's scopes reached the upstream")
	}
	if p := call(t, a.resource, nil); p.status != http.StatusUnauthorized || strings.Contains(p.header.Get("WWW-Authenticate"), "error=") {
		t.Errorf("no token: status %d, WWW-Authenticate %q; want the plain challenge", p.status, p.header.Get("WWW-Authenticate"))
	}
	// An OAuth token wins over an API token sent alongside.
	tok, _ := h.oauth2Token("")
	p = call(t, a.resource, http.Header{"Authorization": {"Bearer " + tok.AccessToken}, "X-Token": {"cm_live_bad"}})
	if p.status != http.StatusOK || !strings.Contains(h.upstream.last(t).Header.Get(identityHeader), `"client_id":"`) {
		t.Errorf("OAuth token with a bad API token alongside: status %d", p.status)
	}
	// The client's bearer token never reaches the MCP server, even in an
	// Authorization field keygate did not read (the API token was used).
	p = call(t, a.resource, http.Header{"Authorization": {"Basic eDp5", "Bearer " + tok.AccessToken}, "X-Token": {"cm_live_good"}})
	if got := h.upstream.last(t).Header.Values("Authorization"); p.status != http.StatusOK || len(got) != 0 {
		t.Errorf("API token with a bearer token in a second Authorization field: status %d, upstream got %d Authorization fields", p.status, len(got))
	}
}
