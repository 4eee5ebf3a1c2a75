package deploy_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// checkProxyRecipe runs what every forward-auth recipe must do, through a
// real proxy listening at menus (the cannmenus API) and events (canskan):
// refusals reach the client with the preset's exact status and body,
// rate-limit headers come back, identity headers go upstream and the token
// does not, and a hostile client's forwarded-request headers change
// nothing keygate checks.
func checkProxyRecipe(t *testing.T, s *stack, menus, events string) {
	t.Helper()
	verifier := s.srv.IdentityVerifier()

	// Refusals, byte for byte.
	expectRefusal(t, "cannmenus, no token", send(t, "GET", menus+"/v2/products?states=California"), 404, cannmenusNotFound)
	expectRefusal(t, "cannmenus, forged token", send(t, "GET", menus+"/v2/products", "X-Token", "cm_live_forged"), 404, cannmenusNotFound)
	expectRefusal(t, "cannmenus, Bearer ignored", send(t, "GET", menus+"/v2/products", "Authorization", "Bearer "+s.menus), 404, cannmenusNotFound)
	expectRefusal(t, "cannmenus, state not entitled", send(t, "GET", menus+"/v2/products?states=New%20York", "X-Token", s.menus), 403, cannmenusNoState)
	expectRefusal(t, "cannmenus, unknown route", send(t, "GET", menus+"/v2/nothing", "X-Token", s.menus), 404, cannmenusNotFound)
	expectRefusal(t, "canskan, no token", send(t, "GET", events+"/api/v1/organization"), 401, canskanRequired)
	expectRefusal(t, "canskan, invalid token", send(t, "GET", events+"/api/v1/organization", "Authorization", "Bearer csk_live_forged"), 401, canskanInvalid)
	expectRefusal(t, "canskan, expired token", send(t, "GET", events+"/api/v1/organization", "Authorization", "Bearer "+s.expired), 401, canskanExpired)

	// A pass: the upstream gets keygate's identity, not the token nor
	// what the client claimed to be, in any spelling.
	got := send(t, "GET", menus+"/v2/products?states=California&page=1",
		append([]string{"X-Token", s.menus, "X-Keygate-Org", "org_forged", "X-Keygate-Token-Id", "tok_forged"}, forgedIdentity...)...)
	saw := upstreamSaw(t, "cannmenus pass", got)
	onlyKeygatesIdentity(t, "cannmenus pass", saw.Header)
	if saw.URI != "/v2/products?states=California&page=1" || saw.Method != "GET" {
		t.Errorf("upstream saw %s %s", saw.Method, saw.URI)
	}
	if saw.Header.Get("X-Token") != "" {
		t.Errorf("the token reached the upstream")
	}
	if v := saw.Header.Values("X-Keygate-Org"); len(v) != 1 || v[0] != s.org.ID {
		t.Errorf("upstream X-Keygate-Org %q, want only %s", v, s.org.ID)
	}
	if v := saw.Header.Values("X-Keygate-Token-Id"); len(v) != 1 || v[0] != s.menusID {
		t.Errorf("upstream X-Keygate-Token-Id %q, want only %s", v, s.menusID)
	}
	if saw.Header.Get("X-Keygate-Scopes") != "products:read" {
		t.Errorf("upstream X-Keygate-Scopes %q", saw.Header.Get("X-Keygate-Scopes"))
	}
	id, err := verifier.Verify(saw.Header.Get("X-Keygate-Identity"), "cannmenus")
	if err != nil {
		t.Fatalf("identity JWT the upstream got: %v", err)
	}
	if id.OrganizationID != s.org.ID || strings.Join(id.Entitlements.States, ",") != "California" {
		t.Errorf("identity %+v", id)
	}

	// Token routes: rate-limit headers on a pass.
	got = send(t, "GET", events+"/api/v1/organization", "Authorization", "Bearer "+s.events)
	saw = upstreamSaw(t, "canskan pass", got)
	if saw.Header.Get("Authorization") != "" {
		t.Errorf("the Bearer token reached the upstream")
	}
	if got.header.Get("X-RateLimit-Limit") != "60" || got.header.Get("X-RateLimit-Remaining") != "59" || got.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("rate-limit headers on a pass: %v", got.header)
	}

	// A hostile client names a public route in the other header family,
	// or a different method: keygate still checks the request the proxy
	// received.
	expectRefusal(t, "X-Forwarded-Uri: /p/abc on a token route",
		send(t, "GET", events+"/api/v1/organization", "X-Forwarded-Uri", "/p/abc", "X-Forwarded-Method", "GET"), 401, canskanRequired)
	expectRefusal(t, "X-Original-URI: /p/abc on a token route",
		send(t, "GET", events+"/api/v1/organization", "X-Original-URI", "/p/abc", "X-Original-Method", "GET"), 401, canskanRequired)
	expectRefusal(t, "X-Forwarded-Method: GET on a POST",
		send(t, "POST", events+"/p/abc", "X-Forwarded-Method", "GET", "X-Original-Method", "GET"), 404, canskanNotFound)
	expectRefusal(t, "X-Forwarded-Uri: /p/abc with a forged token",
		send(t, "GET", menus+"/v2/products", "X-Token", "cm_live_forged", "X-Forwarded-Uri", "/v2/products/../../p/abc"), 404, cannmenusNotFound)
	// The proxy passes a method override on to the API, which would serve
	// that method: keygate must see it too.
	expectRefusal(t, "X-HTTP-Method-Override: DELETE on a GET",
		send(t, "GET", menus+"/v2/products?states=California", "X-Token", s.menus, "X-HTTP-Method-Override", "DELETE"), 400, cannmenusBadRequest)

	// Public route: anonymous pass, then the per-IP limit's 429 with
	// Retry-After and the rate-limit headers. (Invalid tokens above
	// counted against the same per-IP budget, so count what is left.)
	var last response
	for i := 0; i < publicLimitPerMinute+1; i++ {
		last = send(t, "GET", events+"/p/abc123def456", append([]string{"X-Keygate-Org", "org_forged"}, forgedIdentity...)...)
		if last.status == 429 {
			break
		}
		saw := upstreamSaw(t, "public route", last)
		onlyKeygatesIdentity(t, "public route", saw.Header)
		if saw.Header.Get("X-Keygate-Org") != "" || saw.Header.Get("X-Keygate-Identity") != "" {
			t.Errorf("anonymous request reached the upstream with identity headers: %v", saw.Header)
		}
		if last.header.Get("X-RateLimit-Limit") != strconv.Itoa(publicLimitPerMinute) {
			t.Errorf("public pass without X-RateLimit-Limit: %v", last.header)
		}
	}
	expectRefusal(t, "public route over its limit", last, 429, canskanTooMany)
	// Retry-After is keygate's, relayed: it agrees with X-RateLimit-Reset.
	ra, err := strconv.ParseInt(last.header.Get("Retry-After"), 10, 64)
	reset, err2 := strconv.ParseInt(last.header.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || err2 != nil || ra < 1 || abs(time.Now().Unix()+ra-reset) > 2 {
		t.Errorf("429 Retry-After %q with X-RateLimit-Reset %q", last.header.Get("Retry-After"), last.header.Get("X-RateLimit-Reset"))
	}
	if last.header.Get("X-RateLimit-Limit") != "10" || last.header.Get("X-RateLimit-Remaining") != "0" || last.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("429 rate-limit headers: %v", last.header)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// forgedIdentity is what a client sends hoping that the API reads it as
// keygate's word: the identity headers spelled with "_" for "-", which a
// PHP, CGI or WSGI upstream reads as the same name (both are
// HTTP_X_KEYGATE_ORG to FastCGI). nginx and Caddy drop header names with
// underscores; Traefik does not (traefik_test.go).
var forgedIdentity = []string{
	"X_Keygate_Org", "org_forged", "X-Keygate_Org", "org_forged", "X_Keygate-Org", "org_forged",
	"X-Keygate-Token_Id", "tok_forged", "X_Keygate_Scopes", "admin",
}

// onlyKeygatesIdentity fails when the upstream got one of keygate's
// identity headers under another spelling than the one keygate sets.
func onlyKeygatesIdentity(t *testing.T, name string, h http.Header) {
	t.Helper()
	for k := range h {
		for _, id := range identityHeaders {
			if keygate.HeaderNameIs(k, id) && k != id {
				t.Errorf("%s: the upstream got the client's %s: %q", name, k, h[k])
			}
		}
	}
}

// identityHeaders are the headers a forward-auth pass sets upstream.
var identityHeaders = []string{"X-Keygate-Org", "X-Keygate-Token-Id", "X-Keygate-Scopes", "X-Keygate-Identity"}
