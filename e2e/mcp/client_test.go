package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
)

// clientReport is what client.mjs prints.
type clientReport struct {
	ClientID         string   `json:"client_id"`
	Resource         string   `json:"resource"`
	Iss              string   `json:"iss"`
	TokenPrefix      string   `json:"token_prefix"`
	HasRefreshToken  bool     `json:"has_refresh_token"`
	Tools            []string `json:"tools"`
	States           []string `json:"states"`
	Total            int      `json:"total"`
	AuthorizationURL string   `json:"authorization_url"`
	Refusal          struct {
		IsError bool   `json:"is_error"`
		Text    string `json:"text"`
	} `json:"refusal"`
}

// runClient runs the TypeScript SDK client against the stack, logging in
// as u.
func runClient(t *testing.T, node string, s *stack, u *keygate.User, env ...string) clientReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", s.mcpURL)
	cmd.Env = append(os.Environ(), append([]string{
		"KEYGATE_EMAIL=" + u.Email, "KEYGATE_PASSWORD=" + userPass, "KEYGATE_ORGANIZATION=" + s.org.ID,
	}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	var r clientReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("client.mjs output %q: %v\nstderr:\n%s", stdout.String(), err, stderr.String())
	}
	t.Logf("client.mjs reported %s", stdout.String())
	return r
}

// checkReport holds what every successful client run must show: keygate's
// issuer in the redirect, a token for the MCP endpoint, the demo tools, and
// products from the approved organization's states only.
func checkReport(t *testing.T, s *stack, u *keygate.User, r clientReport) {
	t.Helper()
	if r.Iss != s.issuer || r.Resource != s.mcpURL {
		t.Errorf("iss %q, resource %q; want %q, %q", r.Iss, r.Resource, s.issuer, s.mcpURL)
	}
	if !strings.HasPrefix(r.AuthorizationURL, s.issuer+"/oauth/authorize?") {
		t.Errorf("authorization URL %s is not keygate's", r.AuthorizationURL)
	}
	if r.TokenPrefix != "kgo_at_" || !r.HasRefreshToken {
		t.Errorf("token prefix %q, refresh token %v; want kgo_at_ and a refresh token", r.TokenPrefix, r.HasRefreshToken)
	}
	if !slices.Equal(r.Tools, []string{"list_dispensaries", "search_products"}) {
		t.Errorf("tools %v", r.Tools)
	}
	if !slices.Equal(r.States, []string{"California", "Oregon"}) || r.Total == 0 {
		t.Errorf("search_products saw states %v (%d products), want exactly California and Oregon", r.States, r.Total)
	}
	if !r.Refusal.IsError || r.Refusal.Text != "Your organization does not have access to state New York." {
		t.Errorf("search in New York: %+v, want the entitlement refusal", r.Refusal)
	}
	grants, err := s.store.ListOAuthGrants(t.Context(), keygate.OAuthGrantFilter{UserID: u.ID})
	if err != nil || len(grants) != 1 || grants[0].OrganizationID != s.org.ID || grants[0].ClientID != r.ClientID {
		t.Errorf("grants %+v (%v), want one for the client and acme", grants, err)
	}
}

// TestTypeScriptSDKClient: the official TypeScript MCP SDK discovers
// keygate, registers dynamically, logs in, approves, and calls the tools.
func TestTypeScriptSDKClient(t *testing.T) {
	node := requireNode(t)
	t.Parallel()
	s := sharedStack(t)
	u := s.newUser(t)
	r := runClient(t, node, s, u)
	if !strings.HasPrefix(r.ClientID, "kgc_") {
		t.Errorf("client_id %q, want a dynamically registered kgc_ id", r.ClientID)
	}
	checkReport(t, s, u, r)
}

// TestTypeScriptSDKClientWithMetadataDocument: the same client identified
// by a Client ID Metadata Document that keygate fetches over HTTPS.
func TestTypeScriptSDKClientWithMetadataDocument(t *testing.T) {
	node := requireNode(t)
	t.Parallel()
	s := sharedStack(t)
	u := s.newUser(t)
	r := runClient(t, node, s, u, "KEYGATE_CLIENT_METADATA_URL="+s.docURL)
	if r.ClientID != s.docURL {
		t.Errorf("client_id %q, want the metadata document URL %q", r.ClientID, s.docURL)
	}
	checkReport(t, s, u, r)
}

// TestOAuthTokenRefusedOnREST: an access token for the MCP endpoint is no
// API token: the REST routes refuse it with the preset's invalid-token
// answer, wherever it is sent, while an API token works on both.
func TestOAuthTokenRefusedOnREST(t *testing.T) {
	t.Parallel()
	s := sharedStack(t)
	u := s.newUser(t)
	tok := s.oauthToken(t, u)
	if resp := mcpCall(t, s.mcpURL, http.Header{"Authorization": {"Bearer " + tok}}); resp.status != http.StatusOK {
		t.Fatalf("MCP call with the OAuth token: %d %s", resp.status, resp.body)
	}
	for name, header := range map[string]http.Header{
		"in X-Token":              {"X-Token": {tok}},
		"as Authorization Bearer": {"Authorization": {"Bearer " + tok}},
	} {
		r := get(t, s.apiURL+"/v2/products?states=California", header)
		if r.status != http.StatusNotFound || r.body != `{"detail": "Not Found"}` {
			t.Errorf("REST call with the OAuth token %s: %d %s, want 404 {\"detail\": \"Not Found\"}", name, r.status, r.body)
		}
	}

	// The events API, whose tokens travel as Bearer tokens too (canskan
	// preset).
	r := get(t, s.eventsURL+"/api/v1/organization", http.Header{"Authorization": {"Bearer " + tok}})
	if r.status != http.StatusUnauthorized || r.body != `{"message": "Invalid API token."}` {
		t.Errorf("canskan REST call with the OAuth token: %d %s, want 401 {\"message\": \"Invalid API token.\"}", r.status, r.body)
	}

	apiToken := s.apiToken(t, u)
	if r := get(t, s.apiURL+"/v2/products?states=California", http.Header{"X-Token": {apiToken}}); r.status != http.StatusOK {
		t.Errorf("REST call with an API token: %d %s", r.status, r.body)
	}
	if r := mcpCall(t, s.mcpURL, http.Header{"X-Token": {apiToken}}); r.status != http.StatusOK {
		t.Errorf("MCP call with an API token: %d %s", r.status, r.body)
	}
	for _, secret := range []string{tok, apiToken} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("a token secret appeared in keygate's log")
		}
	}
}

// TestOneSessionForDashboardAndOAuth: the dashboard and the OAuth login
// share one session. A user logged in to the dashboard goes straight to
// the consent page, and one who logged in on the OAuth page is logged in
// to the dashboard.
func TestOneSessionForDashboardAndOAuth(t *testing.T) {
	t.Parallel()
	s := sharedStack(t)

	t.Run("dashboard login, then authorize", func(t *testing.T) {
		b := newBrowser()
		if err := b.dashboardLogin(s.adminURL, s.newUser(t)); err != nil {
			t.Fatal(err)
		}
		flow := s.newFlow()
		first, err := b.do(http.MethodGet, flow.authURL(), nil)
		if err := step("authorization page", first, err, http.StatusOK); err != nil {
			t.Fatal(err)
		}
		if first.isOAuthLogin() || !first.isConsent() {
			t.Fatalf("a user logged in to the dashboard was not sent straight to consent:\n%s", first.body)
		}
		back, err := b.consent(first, s.org.ID)
		if err != nil {
			t.Fatal(err)
		}
		tok := flow.exchange(t, back)
		if r := mcpCall(t, s.mcpURL, http.Header{"Authorization": {"Bearer " + tok}}); r.status != http.StatusOK {
			t.Errorf("MCP call with the token: %d %s", r.status, r.body)
		}
	})

	t.Run("OAuth login, then dashboard", func(t *testing.T) {
		b := newBrowser()
		if p, err := b.do(http.MethodGet, s.adminURL+"/orgs", nil); err != nil || p.status != http.StatusSeeOther || p.location.Path != "/login" {
			t.Fatalf("dashboard before any login: %v %+v, want a redirect to /login", err, p)
		}
		first, err := b.do(http.MethodGet, s.newFlow().authURL(), nil)
		if err := step("authorization page", first, err, http.StatusOK); err != nil {
			t.Fatal(err)
		}
		if !first.isOAuthLogin() {
			t.Fatalf("authorization without a session did not ask to log in:\n%s", first.body)
		}
		if _, err := b.logIn(first, s.newUser(t)); err != nil {
			t.Fatal(err)
		}
		p, err := b.do(http.MethodGet, s.adminURL+"/orgs", nil)
		if err := step("dashboard after the OAuth login", p, err, http.StatusOK); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.body, s.org.Name) || !strings.Contains(p.body, s.orgElse.Name) {
			t.Errorf("dashboard organizations page does not list the user's organizations:\n%s", p.body)
		}
	})
}

// flow is one authorization code flow of the pre-registered client, run
// with golang.org/x/oauth2.
type flow struct {
	cfg      *oauth2.Config
	verifier string
	resource oauth2.AuthCodeOption
}

func (s *stack) newFlow() *flow {
	return &flow{
		cfg: &oauth2.Config{
			ClientID: conformanceClient, RedirectURL: "http://127.0.0.1:40001/callback", Scopes: mcpScopes,
			Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth/authorize", TokenURL: s.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		},
		verifier: oauth2.GenerateVerifier(),
		resource: oauth2.SetAuthURLParam("resource", s.mcpURL),
	}
}

func (f *flow) authURL() string {
	return f.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(f.verifier), f.resource)
}

// exchange redeems the code keygate sent the browser back with.
func (f *flow) exchange(t *testing.T, back *url.URL) string {
	t.Helper()
	if back.Query().Get("state") != "st" {
		t.Fatalf("redirect %s lost the state", back)
	}
	tok, err := f.cfg.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(f.verifier), f.resource)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// oauthToken gets an access token as the pre-registered client, u logging
// in on keygate's OAuth page and approving for acme.
func (s *stack) oauthToken(t *testing.T, u *keygate.User) string {
	t.Helper()
	f := s.newFlow()
	back, err := approve(f.authURL(), u, s.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	return f.exchange(t, back)
}

// apiToken creates an API token for acme on the menus API, made by u.
func (s *stack) apiToken(t *testing.T, u *keygate.User) string {
	t.Helper()
	tok, secret, err := keygate.NewToken(s.menus.Tokens, keygate.TokenRequest{
		OrganizationID: s.org.ID, API: s.menus.Name, Name: "e2e", Scopes: mcpScopes, CreatedBy: u.ID,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.CreateToken(t.Context(), tok, 0); err != nil {
		t.Fatal(err)
	}
	return secret
}

type response struct {
	status int
	body   string
}

func get(t *testing.T, u string, header http.Header) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header = header
	return send(t, req)
}

// mcpCall sends an MCP initialize request.
func mcpCall(t *testing.T, u string, header http.Header) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	return send(t, req)
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return response{resp.StatusCode, b.String()}
}
