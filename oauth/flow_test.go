package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
)

const redirectURI = "http://127.0.0.1:33418/callback"

// oauth2Config is golang.org/x/oauth2 set up as an MCP client would be
// after discovery and registration.
func (h *harness) oauth2Config(clientID string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    clientID,
		RedirectURL: redirectURI,
		Scopes:      mcpScopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   h.issuer + oauth.PathAuthorize,
			TokenURL:  h.issuer + oauth.PathToken,
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// oauth2Token runs the flow with golang.org/x/oauth2 for orgID and returns
// the token and the config.
func (h *harness) oauth2Token(orgID string) (*oauth2.Token, *oauth2.Config) {
	h.t.Helper()
	cfg := h.oauth2Config(h.registerPublic(redirectURI))
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", h.api().resource)
	back := h.authorize(cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), resource), orgID)
	tok, err := cfg.Exchange(h.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		h.t.Fatalf("Exchange: %v", err)
	}
	return tok, cfg
}

// TestOAuth2ClientFullFlow drives the whole flow with golang.org/x/oauth2:
// registration, authorization code with PKCE, the MCP call with keygate's
// identity upstream, then refresh rotation.
func TestOAuth2ClientFullFlow(t *testing.T) {
	h := newHarness(t)
	cfg := h.oauth2Config(h.registerPublic(redirectURI))
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", h.api().resource)
	authURL := cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), resource)

	back := h.authorize(authURL, h.org2.ID)
	q := back.Query()
	if got := back.Scheme + "://" + back.Host + back.Path; got != redirectURI {
		t.Errorf("redirected to %s, want %s", got, redirectURI)
	}
	if q.Get("state") != "state-123" || q.Get("iss") != h.issuer || q.Get("code") == "" || q.Has("error") {
		t.Fatalf("redirect query = %v, want code, state=state-123 and iss=%s", q, h.issuer)
	}
	if !strings.HasPrefix(q.Get("code"), "kgo_ac_") {
		t.Errorf("code %q does not have the kgo_ac_ prefix", q.Get("code"))
	}

	tok, err := cfg.Exchange(h.ctx, q.Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if !strings.HasPrefix(tok.AccessToken, "kgo_at_") || !strings.HasPrefix(tok.RefreshToken, "kgo_rt_") {
		t.Errorf("tokens %q…, %q… lack the kgo_at_/kgo_rt_ prefixes", tok.AccessToken[:7], tok.RefreshToken[:7])
	}
	if tok.TokenType != "Bearer" || tok.Extra("scope") != "products:read dispensaries:read" || tok.ExpiresIn != 3600 {
		t.Errorf("token type %q, scope %v, expires_in %d; want Bearer, both scopes, 3600", tok.TokenType, tok.Extra("scope"), tok.ExpiresIn)
	}

	// The MCP call reaches the upstream with the chosen organization's
	// identity and without the client's token.
	p := call(t, h.api().resource, bearer(tok.AccessToken))
	if p.status != http.StatusOK {
		t.Fatalf("MCP call: status %d, body %s", p.status, p.body)
	}
	got := h.upstream.last(t)
	if a := got.Header.Get("Authorization"); a != "" {
		t.Errorf("upstream got Authorization %q; the client's token must not be forwarded", a)
	}
	var id keygate.Identity
	if err := json.Unmarshal([]byte(got.Header.Get(identityHeader)), &id); err != nil {
		t.Fatalf("identity header: %v", err)
	}
	want := keygate.Identity{
		OrganizationID: h.org2.ID, OrganizationSlug: "globex", Plan: "free",
		Entitlements: h.org2.Entitlements, ClientID: cfg.ClientID, UserID: h.user.ID,
		Scopes: mcpScopes, API: "cannmenus",
	}
	if !equalJSON(id, want) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}

	// Refresh: the access token expires, the token source rotates.
	h.clock.Advance(2 * time.Hour)
	if p := call(t, h.api().resource, bearer(tok.AccessToken)); p.status != http.StatusUnauthorized ||
		!strings.Contains(p.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired access token: status %d, WWW-Authenticate %q; want 401 invalid_token", p.status, p.header.Get("WWW-Authenticate"))
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute) // make x/oauth2 refresh
	fresh, err := cfg.TokenSource(h.ctx, &expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Fatal("refresh did not rotate both tokens")
	}
	if p := call(t, h.api().resource, bearer(fresh.AccessToken)); p.status != http.StatusOK {
		t.Fatalf("MCP call with refreshed token: status %d, body %s", p.status, p.body)
	}

	// Reusing the old refresh token revokes the family: the new access
	// token stops working and the new refresh token is refused.
	status, body, _ := h.postForm(oauth.PathToken, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {cfg.ClientID},
	}, "", "")
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh token reuse: %d %v, want 400 invalid_grant", status, body)
	}
	if p := call(t, h.api().resource, bearer(fresh.AccessToken)); p.status != http.StatusUnauthorized {
		t.Errorf("access token after refresh reuse: status %d, want 401 (family revoked)", p.status)
	}
	status, body, _ = h.postForm(oauth.PathToken, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}, "client_id": {cfg.ClientID},
	}, "", "")
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("newest refresh token after reuse: %d %v, want 400 invalid_grant", status, body)
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestTokenResponseHeaders checks what RFC 6749 §5.1 asks of every token
// response: JSON, never cached.
func TestTokenResponseHeaders(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	verifier := oauth2.GenerateVerifier()
	back := h.authorize(h.authURL(clientID, verifier, nil), "")
	status, body, header := h.postForm(oauth.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "client_id": {clientID},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "resource": {h.api().resource},
	}, "", "")
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, body)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// authURL builds an authorization request by hand; extra overrides or
// removes (empty value) parameters.
func (h *harness) authURL(clientID, verifier string, extra url.Values) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
		"state":                 {"xyz"},
		"resource":              {h.api().resource},
		"scope":                 {strings.Join(mcpScopes, " ")},
	}
	for k, v := range extra {
		if len(v) == 1 && v[0] == "" {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	return h.issuer + oauth.PathAuthorize + "?" + q.Encode()
}

// exchange redeems a code by hand and returns the status and body.
func (h *harness) exchange(clientID, code, verifier string, extra url.Values) (int, map[string]any) {
	h.t.Helper()
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "resource": {h.api().resource},
	}
	for k, v := range extra {
		if len(v) == 1 && v[0] == "" {
			form.Del(k)
		} else {
			form[k] = v
		}
	}
	status, body, _ := h.postForm(oauth.PathToken, form, "", "")
	return status, body
}

// codeFor runs the browser part and returns a fresh code.
func (h *harness) codeFor(clientID, verifier string) string {
	h.t.Helper()
	return h.authorize(h.authURL(clientID, verifier, nil), "").Query().Get("code")
}
