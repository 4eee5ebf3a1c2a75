package gateway

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
//
// How many entries it keeps is bounded by its budget, which every gateway
// sharing its token cache draws on.
type identities struct {
	api    string
	signer *identity.Signer // nil: no identity JWT
	now    func() time.Time // the signer's clock
	// sign is the signer's SignReusable (tests count the calls).
	sign   func(*keygate.Identity) (string, time.Time, error)
	budget *identityBudget

	// mu guards byKey; the budget's count changes only under it, with
	// byKey's size.
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

// maxIdentitiesFor is how many entries the gateways sharing tokens (every
// API of a process) keep together: a fifth of the token cache's
// cache.max_entries, 20,000 by default. An entry costs about 1.5 KB of
// heap with a typical identity (a JWT of some 720 bytes;
// BenchmarkIdentityBytesPerEntry), 30 MB at the default, which keeps a
// million stored tokens with the default cache under the 300 MB RSS goal
// (docs/performance.md, "Signed identities") however many APIs there
// are. A token beyond the bound costs a signature when it is not among
// those kept.
func maxIdentitiesFor(tokens *Tokens) int {
	n := 100_000 // NewTokens's default
	if tokens != nil {
		n = tokens.maxEntries
	}
	return max(n/5, 1)
}

// identityBudgetOf returns the budget of the gateways sharing tokens; a
// gateway without a token cache has one of its own.
func identityBudgetOf(tokens *Tokens) *identityBudget {
	if tokens != nil {
		return tokens.identities
	}
	return newIdentityBudget(maxIdentitiesFor(nil))
}

// identityBudget bounds the entries of every identities drawing on it
// together, so the heap they take does not grow with the number of APIs.
// Only adding a key counts (one atomic add); a hit reads nothing of it.
type identityBudget struct {
	max  int64
	used atomic.Int64 // the entries of all caches together

	// mu makes room once at a time; it guards caches, and is taken
	// before any cache's own lock, never while one is held.
	mu     sync.Mutex
	caches []*identities
}

func newIdentityBudget(max int) *identityBudget {
	return &identityBudget{max: int64(max)}
}

// reserve counts one more entry if the budget has room for it.
func (b *identityBudget) reserve() bool {
	if b.used.Add(1) <= b.max {
		return true
	}
	b.used.Add(-1)
	return false
}

// makeRoom frees about an eighth of a full budget: every cache drawing on
// it drops its entries past their reuse time, then random ones until an
// eighth of its own is free (internal/evict). Each cache gives up its
// share, not the one that found the budget full: that one may hold
// nothing (its API's tokens new, another API's entries all stale), and
// would otherwise sign every request until the others make room.
func (b *identityBudget) makeRoom() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used.Load() < b.max {
		return // another miss made room meanwhile
	}
	for _, c := range b.caches {
		c.mu.Lock()
		now, before := c.now(), len(c.byKey)
		evict.MakeRoom(c.byKey, before, 8, func(e *signedIdentity) bool { return !now.Before(e.until) })
		b.used.Add(int64(len(c.byKey) - before))
		c.mu.Unlock()
	}
}

func newIdentities(api string, signer *identity.Signer, budget *identityBudget) *identities {
	c := &identities{api: api, signer: signer, now: time.Now, budget: budget, byKey: map[identityKey]*signedIdentity{}}
	if signer != nil {
		c.now, c.sign = signer.Now, signer.SignReusable
	}
	// Gateways are made once per API, when keygate starts: the budget
	// keeps each cache for as long as the token cache lives.
	budget.mu.Lock()
	budget.caches = append(budget.caches, c)
	budget.mu.Unlock()
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
	c.keep(key, e)
	return e
}

// keep stores e under key: in place of the key's expired entry, or as a
// new entry the budget has room for, made if need be.
func (c *identities) keep(key identityKey, e *signedIdentity) {
	for {
		c.mu.Lock()
		if _, replacing := c.byKey[key]; replacing || c.budget.reserve() {
			c.byKey[key] = e
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.budget.makeRoom()
	}
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
