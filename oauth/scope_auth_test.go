package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/oauth"
)

// A refresh that asks for fewer scopes gets an access token with only those
// (RFC 6749 §6); the refresh token keeps the grant's, so a later refresh
// may ask for all of them again; a scope outside the grant is invalid_scope.
func TestRefreshNarrowsTheAccessTokensScopes(t *testing.T) {
	h := newHarness(t)
	tok, cfg := h.oauth2Token(h.org.ID)
	refresh := func(refreshToken, scope string) (int, map[string]any) {
		t.Helper()
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {cfg.ClientID}}
		if scope != "" {
			form.Set("scope", scope)
		}
		status, body, _ := h.postForm(oauth.PathToken, form, "", "")
		return status, body
	}

	status, narrowed := refresh(tok.RefreshToken, "products:read offline_access")
	if status != http.StatusOK || narrowed["scope"] != "products:read" {
		t.Fatalf("narrowing refresh: %d %v, want 200 with scope products:read", status, narrowed)
	}
	// The endpoint needs both scopes: the narrowed token is refused.
	p := call(t, h.api().resource, bearer(narrowed["access_token"].(string)))
	if p.status != http.StatusForbidden || !strings.Contains(p.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("MCP call with the narrowed token: %d %q, want 403 insufficient_scope", p.status, p.header.Get("WWW-Authenticate"))
	}

	status, full := refresh(narrowed["refresh_token"].(string), "")
	if status != http.StatusOK || full["scope"] != "products:read dispensaries:read" {
		t.Fatalf("refresh without scope after narrowing: %d %v, want the grant's scopes", status, full)
	}
	if p := call(t, h.api().resource, bearer(full["access_token"].(string))); p.status != http.StatusOK {
		t.Errorf("MCP call with the full token: %d %s", p.status, p.body)
	}

	status, body := refresh(full["refresh_token"].(string), "products:read analytics:read")
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_scope")
}

// A client authenticates at the token endpoint exactly as it registered
// (token_endpoint_auth_method): the secret of a client_secret_basic client
// in the form, or of a client_secret_post client in HTTP Basic, is refused,
// and a public client sends no secret at all. A bogus code after a
// successful authentication is invalid_grant, which tells the two apart.
func TestClientAuthenticatesAsRegistered(t *testing.T) {
	h := newHarness(t)
	confidential := func(method string) (id, secret string) {
		t.Helper()
		status, reg := h.register(map[string]any{"redirect_uris": []string{"https://app.example.com/cb"}, "token_endpoint_auth_method": method})
		if status != http.StatusCreated || reg["token_endpoint_auth_method"] != method {
			t.Fatalf("register %s: %d %v", method, status, reg)
		}
		return reg["client_id"].(string), reg["client_secret"].(string)
	}
	exchange := func(form url.Values, basicUser, basicPass string) (int, map[string]any) {
		t.Helper()
		form.Set("grant_type", "authorization_code")
		form.Set("code", "kgo_ac_not_a_code")
		status, body, _ := h.postForm(oauth.PathToken, form, basicUser, basicPass)
		return status, body
	}

	basicID, basicSecret := confidential("client_secret_basic")
	status, body := exchange(url.Values{}, basicID, basicSecret)
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	status, body = exchange(url.Values{"client_id": {basicID}, "client_secret": {basicSecret}}, "", "")
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")

	postID, postSecret := confidential("client_secret_post")
	status, body = exchange(url.Values{"client_id": {postID}, "client_secret": {postSecret}}, "", "")
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	status, body = exchange(url.Values{}, postID, postSecret)
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")
	status, body = exchange(url.Values{"client_id": {postID}}, "", "")
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")

	public := h.registerPublic(redirectURI)
	status, body = exchange(url.Values{"client_id": {public}}, "", "")
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	status, body = exchange(url.Values{"client_id": {public}, "client_secret": {"anything"}}, "", "")
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")
	status, body = exchange(url.Values{}, public, "anything")
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")
}
