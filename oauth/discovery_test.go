package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/oauth"
)

func getJSON(t *testing.T, u string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %q is not JSON: %v", u, body, err)
	}
	return resp.StatusCode, resp.Header, out
}

func TestAuthorizationServerMetadata(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) { o.secondAPI = true })
	want := map[string]any{
		"issuer":                                         h.issuer,
		"authorization_endpoint":                         h.issuer + "/oauth/authorize",
		"token_endpoint":                                 h.issuer + "/oauth/token",
		"registration_endpoint":                          h.issuer + "/oauth/register",
		"revocation_endpoint":                            h.issuer + "/oauth/revoke",
		"scopes_supported":                               []any{"dispensaries:read", "products:read", "offline_access"},
		"response_types_supported":                       []any{"code"},
		"response_modes_supported":                       []any{"query"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported":          []any{"none", "client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":     []any{"none", "client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               []any{"S256"},
		"client_id_metadata_document_supported":          true,
		"authorization_response_iss_parameter_supported": true,
	}
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		status, header, got := getJSON(t, h.issuer+path)
		if status != http.StatusOK || header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: status %d, Content-Type %q", path, status, header.Get("Content-Type"))
		}
		if header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS for browser-based clients", path)
		}
		if !equalJSON(got, want) {
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			t.Errorf("%s =\n%s", path, gotJSON)
		}
	}
}

func TestRegistrationCanBeTurnedOff(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.DisableRegistration = true }
	})
	_, _, got := getJSON(t, h.issuer+"/.well-known/oauth-authorization-server")
	if _, ok := got["registration_endpoint"]; ok {
		t.Error("metadata lists registration_endpoint although registration is off")
	}
	status, body := h.register(map[string]any{"redirect_uris": []string{redirectURI}})
	if status != http.StatusNotFound {
		t.Errorf("register: %d %v, want 404", status, body)
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	h := newHarness(t)
	a := h.api()
	origin := strings.TrimSuffix(a.resource, "/mcp")
	want := map[string]any{
		"resource":                 a.resource,
		"authorization_servers":    []any{h.issuer},
		"scopes_supported":         []any{"products:read", "dispensaries:read"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "cannmenus MCP",
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		status, header, got := getJSON(t, origin+path)
		if status != http.StatusOK || header.Get("Content-Type") != "application/json" || header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: status %d, headers %v", path, status, header)
		}
		if !equalJSON(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if h.upstream.count() != 0 {
		t.Error("metadata requests reached the upstream")
	}
}

// TestUnauthenticatedChallenge is the 401 every MCP client starts from.
func TestUnauthenticatedChallenge(t *testing.T) {
	h := newHarness(t)
	a := h.api()
	metadataURL := strings.TrimSuffix(a.resource, "/mcp") + "/.well-known/oauth-protected-resource/mcp"
	p := call(t, a.resource, nil)
	wantHeader := `Bearer resource_metadata="` + metadataURL + `", scope="products:read dispensaries:read"`
	if p.status != http.StatusUnauthorized || p.header.Get("WWW-Authenticate") != wantHeader {
		t.Errorf("status %d, WWW-Authenticate %q; want 401, %q", p.status, p.header.Get("WWW-Authenticate"), wantHeader)
	}
	wantBody := `{"error":"unauthorized","error_description":"This MCP endpoint needs an OAuth access token."}` + "\n"
	if p.body != wantBody {
		t.Errorf("body %q, want %q", p.body, wantBody)
	}
	if h.upstream.count() != 0 {
		t.Error("an unauthenticated request reached the upstream")
	}

	// A bearer token keygate did not issue gets invalid_token.
	p = call(t, a.resource, bearer("kgo_at_notarealtokenatallnotarealtoken123456"))
	wantHeader = `Bearer error="invalid_token", scope="products:read dispensaries:read", resource_metadata="` + metadataURL + `", error_description="The access token is invalid."`
	if p.status != http.StatusUnauthorized || p.header.Get("WWW-Authenticate") != wantHeader {
		t.Errorf("unknown token: status %d, WWW-Authenticate %q; want 401, %q", p.status, p.header.Get("WWW-Authenticate"), wantHeader)
	}
}

func TestMCPPreflight(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodOptions, h.api().resource, nil)
	req.Header.Set("Origin", "https://inspector.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "authorization, content-type, mcp-protocol-version" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if h.upstream.count() != 0 {
		t.Error("a preflight reached the upstream")
	}
}
