package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// FuzzMCPEndpoint sends arbitrary credentials to a guarded MCP endpoint:
// Authorization header values (one per line of the input), the API's own
// token header, a method and a path under the endpoint. $AT stands for a
// valid access token of this endpoint, $OTHER for one of another API's
// endpoint. Whatever is sent: never a 5xx; a request reaches the MCP
// server only with $AT as the bearer token or the API's valid token, and
// without any Authorization header (what the client sends there is for
// keygate, never passed through); every refusal is a 401 or 403 whose
// WWW-Authenticate points to the endpoint's metadata.
func FuzzMCPEndpoint(f *testing.F) {
	for _, s := range []struct {
		method            uint8
		path, auth, token string
	}{
		{1, "", "Bearer $AT", ""},
		{1, "/sse", "bearer   $AT  ", ""},
		{0, "", "Bearer $OTHER", ""},
		{1, "", "Basic eDp5\nBearer $AT", "cm_live_good"},
		{1, "", "Bearer $AT\nBearer kgo_at_x", ""},
		{1, "", "Bearer kgo_at_", "cm_live_good"},
		{2, "", "Bearer\t$AT", "cm_live_narrow"},
		{1, "?x=1", "", "cm_live_expired"},
		{3, "", "Bearer $AT $AT", ""},
		{1, "", `Bearer "$AT"`, ""},
	} {
		f.Add(s.method, s.path, s.auth, s.token)
	}
	h := newHarness(f, func(o *harnessOptions) { o.apiTokens, o.secondAPI = true, true })
	at, _ := h.oauth2Token("")
	menus, events := h.apis["cannmenus"], h.apis["canskan"]
	h.apis["cannmenus"], h.apis["canskan"] = events, menus // oauth2Token asks for h.api()'s endpoint
	other, _ := h.oauth2Token("")
	h.apis["cannmenus"], h.apis["canskan"] = menus, events
	metadata := `resource_metadata="` + strings.Replace(menus.resource, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1) + `"`
	methods := []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodHead}

	f.Fuzz(func(t *testing.T, method uint8, path, authorization, apiToken string) {
		if !validValue(apiToken) || strings.ContainsAny(path, " #\t") {
			t.Skip() // net/http refuses such requests before keygate sees them
		}
		r := strings.NewReplacer("$AT", at.AccessToken, "$OTHER", other.AccessToken)
		req, err := http.NewRequest(methods[int(method)%len(methods)], menus.resource+path, nil)
		if err != nil {
			t.Skip()
		}
		var sent []string
		for _, v := range strings.Split(r.Replace(authorization), "\n") {
			if !validValue(v) {
				t.Skip()
			}
			if v != "" {
				req.Header.Add("Authorization", v)
				sent = append(sent, v)
			}
		}
		if apiToken != "" {
			req.Header.Set("X-Token", apiToken)
		}
		before := h.upstream.count()
		resp, err := tokenClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("Authorization %q, X-Token %q: %d %s", sent, apiToken, resp.StatusCode, body)
		}

		if h.upstream.count() == before {
			challenge := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden ||
				!strings.HasPrefix(challenge, "Bearer ") || !strings.Contains(challenge, metadata) {
				t.Fatalf("Authorization %q, X-Token %q: refused with %d, WWW-Authenticate %q", sent, apiToken, resp.StatusCode, challenge)
			}
			return
		}
		got := h.upstream.last(t)
		var id keygate.Identity
		if err := json.Unmarshal([]byte(got.Header.Get(identityHeader)), &id); err != nil {
			t.Fatalf("identity header: %v", err)
		}
		switch {
		case id.ClientID != "":
			if len(sent) == 0 || !strings.Contains(sent[0], at.AccessToken) {
				t.Fatalf("Authorization %q forwarded on an OAuth grant", sent)
			}
			if a := got.Header.Values("Authorization"); len(a) > 0 {
				t.Fatalf("Authorization %q passed through to the MCP server", a)
			}
		case id.TokenID != "":
			if apiToken != "cm_live_good" {
				t.Fatalf("X-Token %q forwarded", apiToken)
			}
			if a := got.Header.Values("Authorization"); len(a) > 0 {
				t.Fatalf("Authorization %q passed through to the MCP server", a)
			}
		default:
			t.Fatalf("forwarded without an identity: %+v", id)
		}
	})
}
