package mcp_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/preset"
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

// runClient runs the TypeScript SDK client against the stack.
func runClient(t *testing.T, node string, s *stack, env ...string) clientReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", s.mcpURL)
	cmd.Env = append(os.Environ(), append([]string{
		"KEYGATE_EMAIL=" + email, "KEYGATE_PASSWORD=" + userPass, "KEYGATE_ORGANIZATION=" + s.org.ID,
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
func checkReport(t *testing.T, s *stack, r clientReport) {
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
	grants, err := s.store.ListOAuthGrants(t.Context(), keygate.OAuthGrantFilter{UserID: s.user.ID})
	if err != nil || len(grants) != 1 || grants[0].OrganizationID != s.org.ID || grants[0].ClientID != r.ClientID {
		t.Errorf("grants %+v (%v), want one for the client and acme", grants, err)
	}
}

// TestTypeScriptSDKClient: the official TypeScript MCP SDK discovers
// keygate, registers dynamically, logs in, approves, and calls the tools.
func TestTypeScriptSDKClient(t *testing.T) {
	node := requireNode(t)
	s := newStack(t, stackOptions{})
	r := runClient(t, node, s)
	if !strings.HasPrefix(r.ClientID, "kgc_") {
		t.Errorf("client_id %q, want a dynamically registered kgc_ id", r.ClientID)
	}
	checkReport(t, s, r)
}

// TestTypeScriptSDKClientWithMetadataDocument: the same client identified
// by a Client ID Metadata Document that keygate fetches.
func TestTypeScriptSDKClientWithMetadataDocument(t *testing.T) {
	node := requireNode(t)
	var docURL string
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"client_id": docURL, "client_name": "keygate e2e (metadata document)",
			"redirect_uris": []string{"http://127.0.0.1:33418/callback"},
			"grant_types":   []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
		})
	}))
	t.Cleanup(doc.Close)
	docURL = doc.URL + "/oauth/client-metadata.json"
	roots := x509.NewCertPool()
	roots.AddCert(doc.Certificate())
	s := newStack(t, stackOptions{cimdRoots: roots})
	r := runClient(t, node, s, "KEYGATE_CLIENT_METADATA_URL="+docURL)
	if r.ClientID != docURL {
		t.Errorf("client_id %q, want the metadata document URL %q", r.ClientID, docURL)
	}
	checkReport(t, s, r)
}

// TestOAuthTokenRefusedOnREST: an access token for the MCP endpoint is no
// API token: the REST routes refuse it with the preset's invalid-token
// answer, wherever it is sent, while an API token works on both.
func TestOAuthTokenRefusedOnREST(t *testing.T) {
	s := newStack(t, stackOptions{})
	tok := s.oauthToken()
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

	// An API whose tokens travel as Bearer tokens too (canskan preset).
	events, err := gateway.New(gateway.Config{
		API: &keygate.API{
			Name: "canskan", Preset: preset.CANSKAN(), Upstream: s.apiURL, Tokens: keygate.TokenPolicy{BasePrefix: "csk_"},
			Routes: []keygate.Route{{Methods: []string{http.MethodGet}, Path: "/api/v1/organization", Access: keygate.AccessToken}},
		},
		Tokens: gateway.NewTokens(s.store, gateway.TokensOptions{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/organization", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	events.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || rec.Body.String() != `{"message": "Invalid API token."}` {
		t.Errorf("canskan REST call with the OAuth token: %d %s, want 401 {\"message\": \"Invalid API token.\"}", rec.Code, rec.Body.String())
	}

	apiToken := s.apiToken()
	if r := get(t, s.apiURL+"/v2/products?states=California", http.Header{"X-Token": {apiToken}}); r.status != http.StatusOK {
		t.Errorf("REST call with an API token: %d %s", r.status, r.body)
	}
	if r := mcpCall(t, s.mcpURL, http.Header{"X-Token": {apiToken}}); r.status != http.StatusOK {
		t.Errorf("MCP call with an API token: %d %s", r.status, r.body)
	}
}

// oauthToken gets an access token with golang.org/x/oauth2 as the
// pre-registered client.
func (s *stack) oauthToken() string {
	s.t.Helper()
	cfg := &oauth2.Config{
		ClientID: conformanceClient, RedirectURL: "http://127.0.0.1:40001/callback", Scopes: mcpScopes,
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth/authorize", TokenURL: s.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", s.mcpURL)
	back := newBrowser(s.t).approve(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), resource), s.org.ID)
	tok, err := cfg.Exchange(s.t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok.AccessToken
}

// apiToken creates an API token for acme on the menus API.
func (s *stack) apiToken() string {
	s.t.Helper()
	tok, secret, err := keygate.NewToken(s.menus.Tokens, keygate.TokenRequest{
		OrganizationID: s.org.ID, API: s.menus.Name, Name: "e2e", Scopes: mcpScopes, CreatedBy: s.user.ID,
	}, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.store.CreateToken(s.t.Context(), tok, 0); err != nil {
		s.t.Fatal(err)
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
