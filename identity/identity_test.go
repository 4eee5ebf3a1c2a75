package identity

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate"
)

func newSigner(t *testing.T) *Signer {
	t.Helper()
	k, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func demoIdentity() *keygate.Identity {
	return &keygate.Identity{
		OrganizationID: "org_1", OrganizationSlug: "demo", Plan: "free",
		Entitlements: keygate.Entitlements{States: []string{"California"}},
		TokenID:      "tok_1", Scopes: []string{"products:read"}, API: "cannmenus",
	}
}

func TestSignAndVerifyRoundTrip(t *testing.T) {
	s := newSigner(t)
	raw, err := s.Sign(demoIdentity())
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewVerifier(s.JWKS()).Verify(raw, "cannmenus")
	if err != nil {
		t.Fatal(err)
	}
	if got.OrganizationID != "org_1" || got.Plan != "free" || got.Entitlements.States[0] != "California" || got.TokenID != "tok_1" {
		t.Fatalf("identity did not round-trip: %+v", got)
	}
}

func TestVerifyRefusesForgedWrongAudienceAndExpired(t *testing.T) {
	s := newSigner(t)
	raw, _ := s.Sign(demoIdentity())
	other := newSigner(t)
	if _, err := NewVerifier(other.JWKS()).Verify(raw, ""); err == nil {
		t.Error("JWT signed by another key accepted")
	}
	v := NewVerifier(s.JWKS())
	if _, err := v.Verify(raw, "canskan"); err == nil {
		t.Error("JWT for another API accepted")
	}
	tampered := raw[:len(raw)-3] + "AAA"
	if _, err := v.Verify(tampered, ""); err == nil {
		t.Error("tampered JWT accepted")
	}
	v.now = func() time.Time { return time.Now().Add(keygate.IdentityLifetime + 10*time.Second) }
	if _, err := v.Verify(raw, ""); err == nil {
		t.Error("expired JWT accepted")
	}
}

func TestJWKSHandlerPublishesOnlyThePublicKey(t *testing.T) {
	s := newSigner(t)
	rec := httptest.NewRecorder()
	s.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	body := rec.Body.String()
	if strings.Contains(body, `"d"`) {
		t.Fatalf("JWKS leaks the private key: %s", body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("bad JWKS %s: %v", body, err)
	}
	if k := set.Keys[0]; k.Algorithm != "EdDSA" || k.Use != "sig" || !strings.HasPrefix(body, `{"keys":[{"use":"sig","kty":"OKP","kid":"key_`) {
		t.Fatalf("unexpected key %s", body)
	}
	raw, _ := s.Sign(demoIdentity())
	if _, err := NewVerifier(set).Verify(raw, "cannmenus"); err != nil {
		t.Fatalf("published JWKS does not verify: %v", err)
	}
}

func TestSignReusesAJWTForHalfItsLifetime(t *testing.T) {
	s := newSigner(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	first, _ := s.Sign(demoIdentity())
	now = now.Add(keygate.IdentityLifetime/2 - time.Second)
	if again, _ := s.Sign(demoIdentity()); again != first {
		t.Error("the same identity within half the lifetime was signed again")
	}
	changed := demoIdentity()
	changed.Entitlements.States = []string{"Oregon"}
	if other, _ := s.Sign(changed); other == first {
		t.Error("a changed identity got the old JWT")
	}
	now = now.Add(2 * time.Second)
	later, _ := s.Sign(demoIdentity())
	if later == first {
		t.Error("a JWT past half its lifetime was handed out again")
	}
	v := NewVerifier(s.JWKS())
	v.now = func() time.Time { return now }
	if id, err := v.Verify(later, "cannmenus"); err != nil || id.Entitlements.States[0] != "California" {
		t.Errorf("re-signed JWT: %+v %v", id, err)
	}
}

// A full reuse cache frees an eighth of itself, not everything: the
// identities signed before it filled are mostly still reused.
func TestSignReuseCacheKeepsMostIdentitiesWhenFull(t *testing.T) {
	s := newSigner(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	identityOf := func(i int) *keygate.Identity {
		id := demoIdentity()
		id.TokenID = fmt.Sprintf("tok_%d", i)
		return id
	}
	first := make([]string, maxSignedIdentities)
	for i := range first {
		jwt, err := s.Sign(identityOf(i))
		if err != nil {
			t.Fatal(err)
		}
		first[i] = jwt
	}
	if _, err := s.Sign(identityOf(maxSignedIdentities)); err != nil { // one past the bound
		t.Fatal(err)
	}
	if want := maxSignedIdentities - maxSignedIdentities/8 + 1; len(s.signed) != want {
		t.Fatalf("%d identities kept after one past the bound, want %d", len(s.signed), want)
	}
	// A second on, a JWT signed again differs (its times do); one reused
	// does not.
	now = now.Add(time.Second)
	reused := 0
	for i := range 1000 { // a sample: signing all again would refill the cache
		if jwt, _ := s.Sign(identityOf(i)); jwt == first[i] {
			reused++
		}
	}
	if reused < 800 { // seven in eight expected
		t.Errorf("%d of 1000 identities signed before the cache filled were reused, want most", reused)
	}
}

func BenchmarkSign(b *testing.B) {
	k, _ := NewSigningKey()
	s, _ := NewSigner(k)
	id := demoIdentity()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(id); err != nil {
			b.Fatal(err)
		}
	}
}
