package gateway_test

import (
	"net/http"
	"testing"

	"github.com/keygate/keygate"
)

// With ?refusal=headers (keygate's nginx recipe) a refusal answers 401 or
// 403, the only statuses nginx's auth_request relays, and carries the
// preset's real status and exact body in headers; a pass is unchanged.
// e2e/proxies proves the whole round trip through a real nginx.
func TestForwardAuthRefusalInHeaders(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	for _, c := range []struct {
		name, token          string
		wantCode             int
		wantStatus, wantBody string
	}{
		{"no token", "", 403, "404", `{"detail": "Not Found"}`},
		{"forged token", "cm_live_nope", 403, "404", `{"detail": "Not Found"}`},
	} {
		h := http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/v2/products"}}
		if c.token != "" {
			h.Set("X-Token", c.token)
		}
		got := sendReal(t, f.menusGW, "GET", "/_keygate/auth?refusal=headers", h)
		if got.status != c.wantCode || got.body != "" || got.header.Get("X-Keygate-Status") != c.wantStatus || got.header.Get("X-Keygate-Body") != c.wantBody {
			t.Errorf("%s: got %d %q status header %q body header %q", c.name, got.status, got.body, got.header.Get("X-Keygate-Status"), got.header.Get("X-Keygate-Body"))
		}
	}

	canskan := sendReal(t, f.eventsGW, "GET", "/_keygate/auth?refusal=headers", http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/api/v1/attendees"}})
	if canskan.status != 401 || canskan.header.Get("X-Keygate-Status") != "401" || canskan.header.Get("X-Keygate-Body") != `{"message": "API token required."}` {
		t.Errorf("canskan without a token: %d %v", canskan.status, canskan.header)
	}

	pass := sendReal(t, f.menusGW, "GET", "/_keygate/auth?refusal=headers", http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/v2/products"}, "X-Token": {secret}})
	if pass.status != 200 || pass.header.Get("X-Keygate-Token-Id") != tok.ID || pass.header.Get("X-Keygate-Status") != "" {
		t.Errorf("pass: %d %v", pass.status, pass.header)
	}

	// Without the parameter, Traefik and Caddy get the preset's own answer.
	expect(t, "without refusal=headers", sendReal(t, f.menusGW, "GET", "/_keygate/auth", http.Header{"X-Original-Uri": {"/v2/products"}}), 404, `{"detail": "Not Found"}`)
}
