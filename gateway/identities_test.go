package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
)

// identitySent forwards one request with secret and returns the identity
// JWT and scopes header the upstream received.
func identitySent(t *testing.T, f *fixture, secret string) (jwt, scopes string) {
	t.Helper()
	got := serve(f.menusGW, "GET", "/v2/products?states=California", map[string][]string{"X-Token": {secret}})
	if got.status != 200 {
		t.Fatalf("status %d body %s", got.status, got.body)
	}
	var seen upstreamSeen
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatal(err)
	}
	return seen.Header.Get(keygate.HeaderIdentity), seen.Header.Get(keygate.HeaderScopes)
}

// The identity a token's requests carry is signed once and sent again
// while it has most of its life left, separately for each token, and a
// change to the organization reaches it as soon as the token cache sees
// the change: the reused identity is never older than what it encodes.
func TestIdentityIsReusedPerTokenAndFollowsChanges(t *testing.T) {
	f := newFixture(t)
	tokA, secretA := f.token(f.menus, []string{"products:read", "analytics:read"}, keygate.Expiry90Days, f.now)
	tokB, secretB := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)

	first, scopes := identitySent(t, f, secretA)
	if again, _ := identitySent(t, f, secretA); again != first {
		t.Error("a second request within the reuse window got a new identity JWT")
	}
	if scopes != "products:read analytics:read" {
		t.Errorf("scopes header %q", scopes)
	}
	idA, err := f.verifier.Verify(first, "cannmenus")
	if err != nil {
		t.Fatal(err)
	}
	jwtB, scopesB := identitySent(t, f, secretB)
	idB, err := f.verifier.Verify(jwtB, "cannmenus")
	if err != nil {
		t.Fatal(err)
	}
	if idA.TokenID != tokA.ID || idB.TokenID != tokB.ID || scopesB != "products:read" {
		t.Errorf("token ids %s and %s, scopes %q: want %s and %s, products:read", idA.TokenID, idB.TokenID, scopesB, tokA.ID, tokB.ID)
	}

	f.org.Plan = "pro"
	f.org.Entitlements.States = []string{"California"}
	if err := f.store.UpdateOrganization(context.Background(), f.org); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the organization change to reach the identity", func() bool {
		jwt, _ := identitySent(t, f, secretA)
		id, err := f.verifier.Verify(jwt, "cannmenus")
		if err != nil {
			t.Fatal(err)
		}
		return id.Plan == "pro" && strings.Join(id.Entitlements.States, ",") == "California"
	})
}

// A token's rate limit buckets, named once with its identity, are the
// ones the gateway spells out for any other request: per token, per
// organization, and a route's own rule in a bucket of its own.
func TestTokenLimitKeysAreTheSpelledOutOnes(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	u, _ := url.Parse("/api/v1/attendees")
	req := gateway.Request{Method: "GET", URL: u, Header: http.Header{"Authorization": {"Bearer " + secret}}, ClientIP: netip.MustParseAddr("203.0.113.7")}
	d, err := f.eventsGW.Authorize(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	byToken := &keygate.RateLimit{Key: keygate.LimitByToken, Limit: 10, Period: time.Minute}
	byOrg := &keygate.RateLimit{Key: keygate.LimitByOrganization, Limit: 10, Period: time.Minute}
	for _, tc := range []struct {
		name string
		rule *keygate.RateLimit
		want string
	}{
		{"token", byToken, "canskan:token:" + tok.ID},
		{"organization", byOrg, "canskan:org:" + f.org.ID},
		{"failed auth", f.events.FailedAuthRateLimit, "canskan:failed_auth:ip:203.0.113.7"},
	} {
		used, spelled := gateway.LimitKeys(f.eventsGW, d, tc.rule, req)
		if used != spelled || used != tc.want {
			t.Errorf("%s: bucket %q, spelled out %q, want %q", tc.name, used, spelled, tc.want)
		}
	}
	route := *d.Route
	route.RateLimit = byToken
	d.Route = &route
	used, spelled := gateway.LimitKeys(f.eventsGW, d, byToken, req)
	if used != spelled || !strings.HasPrefix(used, "canskan:route:") {
		t.Errorf("route rule: bucket %q, spelled out %q", used, spelled)
	}
}
