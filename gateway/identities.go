package gateway

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/internal/evict"
)

// identities keeps, per token and organization, the identity keygate
// vouches for and its header values (the scopes joined, the signed JWT),
// so a busy token costs one identity, one JSON encoding and one signature
// per half identity lifetime instead of one per request.
//
// An entry is keyed by the token and organization the token cache handed
// out: the cache gives the same pointers until it reads either again (a
// change, a refresh) and never changes one in place, so the pair stands
// for everything the identity encodes (the API's name is the gateway's).
// An entry is reused only until the signer's reuse time, while the JWT
// has at least half its lifetime left. It says nothing about whether the
// token is still good: an identity is looked up only after the token was
// accepted, so a revoked or expired token is refused before it is asked.
type identities struct {
	api    string
	signer *identity.Signer // nil: no identity JWT
	now    func() time.Time // the signer's clock
	// sign is the signer's SignReusable (tests count the calls).
	sign func(*keygate.Identity) (string, time.Time, error)
	max  int // entries kept at most

	mu    sync.RWMutex
	byKey map[identityKey]*signedIdentity
}

type identityKey struct {
	tok *keygate.Token
	org *keygate.Organization
}

// signedIdentity is an identity and the header values that say it. It is
// shared by every request of its token until replaced: read only.
type signedIdentity struct {
	id *keygate.Identity
	// values are the header values: the organization, the token's id,
	// the scopes joined, the signed JWT ("" without a signer). Headers
	// are given slices of it, so it is never written after the entry is
	// made.
	values [4]string
	until  time.Time
	// tokenKey and orgKey name the token's and its organization's rate
	// limit buckets for the API's own rules (Gateway.limitKey).
	tokenKey, orgKey string
}

// maxIdentitiesFor is how many entries a gateway keeps: a fifth of the
// token cache's cache.max_entries, 20,000 by default. An entry costs
// about 1.5 KB of heap with a typical identity (a JWT of some 720
// bytes; BenchmarkIdentityBytesPerEntry), 30 MB at the default, which
// keeps a million stored tokens with the default cache under the 300 MB
// RSS goal (docs/performance.md, "Signed identities"). A token beyond the bound
// costs a signature when it is not among those kept.
func maxIdentitiesFor(tokens *Tokens) int {
	n := 100_000 // NewTokens's default
	if tokens != nil {
		n = tokens.maxEntries
	}
	return max(n/5, 1)
}

func newIdentities(api string, signer *identity.Signer, bound int) *identities {
	c := &identities{api: api, signer: signer, now: time.Now, max: bound, byKey: map[identityKey]*signedIdentity{}}
	if signer != nil {
		c.now, c.sign = signer.Now, signer.SignReusable
	}
	return c
}

// of returns the identity of tok in org with its header values. A
// signature that fails is not kept: the entry comes back without a JWT,
// and the request's headers are signed (and the failure logged) as
// without this cache.
func (c *identities) of(tok *keygate.Token, org *keygate.Organization) *signedIdentity {
	key := identityKey{tok, org}
	now := c.now()
	c.mu.RLock()
	e := c.byKey[key]
	c.mu.RUnlock()
	if e != nil && now.Before(e.until) {
		return e
	}
	id := &keygate.Identity{
		OrganizationID: org.ID, OrganizationSlug: org.Slug, Plan: org.Plan,
		Entitlements: org.Entitlements, TokenID: tok.ID, Scopes: tok.Scopes, API: c.api,
	}
	e = &signedIdentity{
		id:       id,
		values:   [4]string{id.OrganizationID, id.TokenID, strings.Join(id.Scopes, " ")},
		until:    now.Add(keygate.IdentityLifetime / 2),
		tokenKey: c.api + ":token:" + tok.ID, orgKey: c.api + ":org:" + org.ID,
	}
	if c.signer != nil {
		jwt, until, err := c.sign(id)
		if err != nil {
			e.until = time.Time{} // not kept
			return e
		}
		e.values[3], e.until = jwt, until
	}
	c.mu.Lock()
	if len(c.byKey) >= c.max {
		evict.MakeRoom(c.byKey, c.max, 8, func(e *signedIdentity) bool { return !now.Before(e.until) })
	}
	c.byKey[key] = e
	c.mu.Unlock()
	return e
}

// set adds the identity headers of e to h, as SetIdentityHeaders does for
// a fresh identity; ok is false when e carries no JWT its signer should
// have made, and SetIdentityHeaders must sign.
func (e *signedIdentity) set(h http.Header, signer *identity.Signer) (ok bool) {
	if e == nil || signer != nil && e.values[3] == "" {
		return false
	}
	// The entry's own array holds the values (the names are canonical
	// already), each slice capped so that an append copies.
	vs := e.values[:]
	h[keygate.HeaderOrganization] = vs[0:1:1]
	if e.id.TokenID != "" {
		h[keygate.HeaderTokenID] = vs[1:2:2]
	}
	h[keygate.HeaderScopes] = vs[2:3:3]
	if signer != nil {
		h[keygate.HeaderIdentity] = vs[3:4:4]
	}
	return true
}
