package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
)

// A cached token is checked at every request from what its entry holds:
// its API, its expiry at the request's clock, its revocation, all without
// asking the store again.
func TestCachedTokenIsCheckedFromItsEntry(t *testing.T) {
	st, org := newStallingStore(t)
	ctx := context.Background()
	now := time.Now()
	tok, secret, err := keygate.NewToken(keygate.TokenPolicy{BasePrefix: "csk_"},
		keygate.TokenRequest{OrganizationID: org.ID, API: "canskan", Name: "t", Expiry: keygate.Expiry7Days}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}
	d := keygate.DigestToken(secret)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	canskan, cannmenus := tokens.APIRef("canskan"), tokens.APIRef("cannmenus")
	if _, ok, _ := cachedFor(tokens, canskan, d, now); ok {
		t.Fatal("answered from an empty cache")
	}
	stored, _, err := tokens.Lookup(ctx, d) // its expiry as the store keeps it
	if err != nil {
		t.Fatal(err)
	}
	expires := *stored.ExpiresAt
	lookups := st.lookups.Load()
	for _, c := range []struct {
		name string
		api  gateway.APIRef
		at   time.Time
		code string
	}{
		{"now", canskan, now, ""},
		{"a moment before its expiry", canskan, expires.Add(-time.Nanosecond), ""},
		{"at its expiry", canskan, expires, keygate.ETOKENEXPIRED},
		{"a year later", canskan, now.AddDate(1, 0, 0), keygate.ETOKENEXPIRED},
		{"another API", cannmenus, now, keygate.ETOKENINVALID},
		{"no API", gateway.APIRef{}, now, keygate.ETOKENINVALID},
	} {
		got, ok, err := cachedFor(tokens, c.api, d, c.at)
		if !ok || keygate.ErrorCode(err) != c.code || (err == nil) != (got != nil && got.ID == tok.ID) {
			t.Errorf("%s: token %v, cached %v, error %v; want cached, code %q", c.name, got, ok, err, c.code)
		}
	}
	if n := st.lookups.Load() - lookups; n != 0 {
		t.Errorf("the checks read the store %d times, want none", n)
	}

	// Revoked: the change drops the entry, and the token read again is
	// refused, from its entry too while that lasts.
	if err := st.RevokeToken(ctx, tok.ID, now); err != nil {
		t.Fatal(err)
	}
	tokens.Apply(keygate.Change{Kind: keygate.ChangeToken, ID: tok.ID})
	if _, ok, _ := cachedFor(tokens, canskan, d, now); ok {
		t.Fatal("a revoked token's entry outlived the change")
	}
	if _, _, err := tokens.Lookup(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := cachedFor(tokens, canskan, d, now); !ok || keygate.ErrorCode(err) != keygate.ETOKENINVALID {
		t.Errorf("revoked token from the cache: cached %v, error %v; want ETOKENINVALID", ok, err)
	}
}

func cachedFor(tokens *gateway.Tokens, api gateway.APIRef, d keygate.TokenDigest, now time.Time) (*keygate.Token, bool, error) {
	tok, _, ok, err := tokens.CachedFor(api, d, now)
	return tok, ok, err
}

// An expired token is refused at the moment it expires by the gateway's
// clock, though the cache still holds it.
func TestCachedTokenIsRefusedOnceExpired(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry7Days, f.now)
	clock := f.now
	gw, err := gateway.New(gateway.Config{API: f.events, Tokens: f.tokens, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	h := map[string][]string{"Authorization": {"Bearer " + secret}}
	if got := serve(gw, "GET", "/api/v1/attendees", h); got.status != 200 {
		t.Fatalf("before its expiry: %d %s", got.status, got.body)
	}
	lookups := f.store.lookups.Load()
	clock = f.now.Add(7 * 24 * time.Hour)
	expect(t, "at its expiry", serve(gw, "GET", "/api/v1/attendees", h), 401, `{"message": "API token has expired."}`)
	if n := f.store.lookups.Load() - lookups; n != 0 {
		t.Errorf("the expired token cost %d store reads, want none (it is cached)", n)
	}
	if got := serve(f.eventsGW, "GET", "/api/v1/attendees", h); got.status != 200 {
		t.Errorf("at the real time, through another gateway: %d %s", got.status, got.body)
	}
}

// An organization's slot goes with the last cached token that points at
// it, whether the token goes by a change or by eviction, and stays while
// one does, through a change to the organization and a token's refresh.
func TestOrganizationSlotGoesWithItsLastToken(t *testing.T) {
	st, org := newStallingStore(t)
	ctx := context.Background()
	other := &keygate.Organization{Slug: "other", Name: "Other", Plan: "free"}
	if err := st.CreateOrganization(ctx, other); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	tokens := gateway.NewTokens(st, gateway.TokensOptions{TTL: time.Minute, MaxEntries: 10, Now: func() time.Time { return clock }})
	lookup := func(d keygate.TokenDigest) {
		t.Helper()
		if _, _, err := tokens.Lookup(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	slots := func(what string, want int) {
		t.Helper()
		if got := gateway.OrgSlots(tokens); got != want {
			t.Errorf("%s: %d organization slots, want %d", what, got, want)
		}
	}
	a1, a2, b := createToken(t, st, org), createToken(t, st, org), createToken(t, st, other)
	lookup(a1)
	lookup(a2)
	lookup(b)
	slots("three tokens of two organizations", 2)

	tokens.Apply(keygate.Change{Kind: keygate.ChangeOrganization, ID: other.ID})
	slots("the other organization changed", 2)
	lookup(b) // reads the organization again, into the same slot
	if _, _, ok, _ := tokens.CachedFor(tokens.APIRef("canskan"), b, clock); !ok {
		t.Error("the token of a changed organization is not answered from the cache once read again")
	}

	tokB, err := st.FindTokenByHash(ctx, b.String())
	if err != nil {
		t.Fatal(err)
	}
	tokens.Apply(keygate.Change{Kind: keygate.ChangeToken, ID: tokB.ID})
	slots("the other organization's only token dropped", 1)

	clock = clock.Add(2 * time.Minute) // past the TTL: the next lookups refresh
	lookup(a1)
	slots("a token refreshed", 1)

	tokA1, err := st.FindTokenByHash(ctx, a1.String())
	if err != nil {
		t.Fatal(err)
	}
	tokens.Apply(keygate.Change{Kind: keygate.ChangeToken, ID: tokA1.ID})
	slots("one of the organization's two tokens dropped", 1)

	// Eviction: fill the cache with the other organization's tokens until
	// a2 is evicted, then every slot must belong to a cached token.
	for tokens.Len() > 0 {
		if _, _, ok, _ := tokens.CachedFor(tokens.APIRef("canskan"), a2, clock); !ok {
			break
		}
		lookup(createToken(t, st, other))
	}
	slots("the organization's last token evicted", 1)
}
