package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keygate/keygate"
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
