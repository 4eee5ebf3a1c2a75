// Package identity signs and verifies the X-Keygate-Identity header: a
// short-lived EdDSA JWT that tells an upstream which organization a request
// acts for, with its plan and entitlements, so the upstream can filter data
// without trusting anything else the client sent. Keys are published as a
// JWKS. The JWT never contains a token secret.
package identity

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/evict"
)

// claims is the JWT body: registered claims plus the identity itself.
type claims struct {
	jwt.Claims
	keygate.Identity
}

// Signer signs identities with one Ed25519 key.
type Signer struct {
	kid    string
	public ed25519.PublicKey
	signer jose.Signer
	now    func() time.Time

	// Signing costs tens of microseconds, far more than the rest of a
	// request's checks, so an identity signed once is reused for half its
	// lifetime: a busy token costs one signature per 30 seconds, and an
	// upstream always receives a JWT with at least half its life left.
	mu     sync.Mutex
	signed map[string]signedIdentity
}

type signedIdentity struct {
	jwt     string
	reuseTo time.Time
}

// maxSignedIdentities bounds the reuse cache; when full, expired entries
// and then random ones free an eighth of it.
const maxSignedIdentities = 10000

// NewSigner returns a Signer for a stored signing key.
func NewSigner(k *keygate.SigningKey) (*Signer, error) {
	if len(k.PrivateKey) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity: signing key %s has %d bytes, want an Ed25519 seed", k.ID, len(k.PrivateKey))
	}
	priv := ed25519.NewKeyFromSeed(k.PrivateKey)
	js, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, err
	}
	return &Signer{kid: k.ID, public: priv.Public().(ed25519.PublicKey), signer: js, now: time.Now, signed: map[string]signedIdentity{}}, nil
}

// NewSigningKey returns a fresh random key to offer the store.
func NewSigningKey() (*keygate.SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return &keygate.SigningKey{ID: keygate.NewID("key"), PrivateKey: priv.Seed(), CreatedAt: time.Now().UTC()}, nil
}

// Sign returns the compact JWT for id, valid for keygate.IdentityLifetime,
// with the API's name as audience. The same identity signed within the
// last half lifetime gets the same JWT back.
func (s *Signer) Sign(id *keygate.Identity) (string, error) {
	jwt, _, err := s.SignReusable(id)
	return jwt, err
}

// SignReusable is Sign, and says until when the JWT may be sent again for
// the same identity: at least half its lifetime remains until then. A
// caller may keep the JWT that long instead of asking again.
func (s *Signer) SignReusable(id *keygate.Identity) (jwt string, reuseTo time.Time, err error) {
	key, err := json.Marshal(id)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	s.mu.Lock()
	prev, ok := s.signed[string(key)]
	s.mu.Unlock()
	if ok && now.Before(prev.reuseTo) {
		return prev.jwt, prev.reuseTo, nil
	}
	jwt, err = s.sign(id, now)
	if err != nil {
		return "", time.Time{}, err
	}
	reuseTo = now.Add(keygate.IdentityLifetime / 2)
	s.mu.Lock()
	if len(s.signed) >= maxSignedIdentities {
		evict.MakeRoom(s.signed, maxSignedIdentities, 8, func(e signedIdentity) bool { return !now.Before(e.reuseTo) })
	}
	s.signed[string(key)] = signedIdentity{jwt: jwt, reuseTo: reuseTo}
	s.mu.Unlock()
	return jwt, reuseTo, nil
}

// Now is the Signer's clock, the one SignReusable's reuseTo is on.
func (s *Signer) Now() time.Time { return s.now() }

func (s *Signer) sign(id *keygate.Identity, now time.Time) (string, error) {
	c := claims{
		Claims: jwt.Claims{
			Issuer:    keygate.IdentityIssuer,
			Subject:   id.OrganizationID,
			Audience:  jwt.Audience{id.API},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			Expiry:    jwt.NewNumericDate(now.Add(keygate.IdentityLifetime)),
		},
		Identity: *id,
	}
	return jwt.Signed(s.signer).Claims(c).Serialize()
}

// JWKS returns the public key set upstreams verify with.
func (s *Signer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: s.public, KeyID: s.kid, Algorithm: string(jose.EdDSA), Use: "sig",
	}}}
}

// JWKSHandler serves the key set at /.well-known/jwks.json.
func (s *Signer) JWKSHandler() http.Handler {
	body, _ := json.Marshal(s.JWKS())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}

// Verifier checks identity JWTs against a key set.
type Verifier struct {
	keys jose.JSONWebKeySet
	now  func() time.Time
}

// NewVerifier returns a Verifier trusting the keys in set.
func NewVerifier(set jose.JSONWebKeySet) *Verifier {
	return &Verifier{keys: set, now: time.Now}
}

// ErrNoIdentity is returned when a request carries no identity header.
var ErrNoIdentity = errors.New("identity: no " + keygate.HeaderIdentity + " header")

// Verify checks the signature, issuer, audience (when non-empty) and times,
// and returns the identity.
func (v *Verifier) Verify(raw, audience string) (*keygate.Identity, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, fmt.Errorf("identity: malformed JWT: %w", err)
	}
	var c claims
	if err := tok.Claims(v.keys, &c); err != nil {
		return nil, fmt.Errorf("identity: bad signature: %w", err)
	}
	expected := jwt.Expected{Issuer: keygate.IdentityIssuer, Time: v.now()}
	if audience != "" {
		expected.AnyAudience = jwt.Audience{audience}
	}
	if err := c.Claims.ValidateWithLeeway(expected, 5*time.Second); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id := c.Identity
	return &id, nil
}

// FromRequest verifies the request's X-Keygate-Identity header.
func (v *Verifier) FromRequest(r *http.Request, audience string) (*keygate.Identity, error) {
	raw := r.Header.Get(keygate.HeaderIdentity)
	if raw == "" {
		return nil, ErrNoIdentity
	}
	return v.Verify(raw, audience)
}
