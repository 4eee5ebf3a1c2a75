package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/backoff"
	"github.com/keygate/keygate/internal/evict"
)

// TokenStore is what token verification reads.
type TokenStore interface {
	FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error)
	FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error)
}

// Tokens resolves token hashes to tokens and their organizations through a
// cache shared by every API of an instance. Entries are refreshed after TTL
// and dropped at once when the store's change feed says a token or an
// organization changed, so a delete reaches every instance within the
// feed's latency.
//
// Every store read runs under its own deadline (StoreTimeout), detached
// from the request that asked for it: requests for the same key wait on one
// read, and each gives up on its own context, so one client going away
// fails nobody else. A read that fails or times out is an outage: entries
// younger than StaleIfError keep answering, so known tokens keep working
// through a database restart or a network that stops answering; while the
// store is known to be down they answer at once, and one read per key in
// the background finds out when it is back.
//
// The store's "no such token" is cached too, for NegativeTTL, so a client
// repeating a well-formed unknown token costs no query per request and is
// refused on the same path as a deleted token this instance has cached.
// Any token change (a create, a rotation, a revoke; each is published on
// the change feed) empties the negative cache, since a change names a
// token by id and a negative entry knows only a hash: a token created or
// rotated through any instance is never refused for having been unknown
// a moment before, beyond the feed's latency.
//
// Once Follow is called, entries answer only while the feed follows: a
// token read before the feed has read where it begins, or while a stopped
// feed is being started again, could be revoked by a change that feed
// never delivers; and while the feed reconnects by itself, a change
// committed meanwhile reaches the cache only once it is back. Until then
// every lookup reads the store, and what it reads is kept only as
// stale_if_error's answer for when the store fails; where the feed begins
// (again), everything cached before is dropped, and where it has caught
// up after reconnecting, the changes it missed have been applied.
type Tokens struct {
	store        TokenStore
	ttl          time.Duration
	staleIfError time.Duration
	storeTimeout time.Duration
	maxEntries   int
	negativeTTL  time.Duration
	maxNegative  int
	now          func() time.Time
	logger       *slog.Logger
	// epoch is when the cache was made, by its clock: token entries say
	// when they were read as time since then.
	epoch time.Time
	// identities bounds the signed identities kept by the gateways that
	// share this cache (identities.go), all of them together.
	identities *identityBudget

	mu sync.RWMutex
	// tokens holds each entry in the map itself, keyed by the 32-byte
	// digest: a hit, and the request's checks of the token (CachedFor),
	// read the map's slot and the organization's slot and nothing else,
	// where a map of hex strings to pointers read the key's 64 bytes, the
	// entry and the token behind three pointers, and the checks read the
	// token again. With the default 100,000 entries the cache is far
	// larger than the CPU's caches, so each pointer followed is a likely
	// miss to memory.
	tokens map[keygate.TokenDigest]tokenEntry
	// hashes and rotated map a token id to the digests it is cached
	// under, for invalidation by id: hashes the first, held in the map as
	// almost every token has one, rotated any more (a rotated token has
	// two while its old secret's grace lasts).
	hashes  map[string]keygate.TokenDigest
	rotated map[string][]keygate.TokenDigest
	// orgs holds the slot of each organization some entry points at, by
	// id; a slot goes when its last entry does.
	orgs map[string]*orgSlot
	// apis numbers the API names of the tokens cached and of the
	// gateways that asked (APIRef): an entry carries its token's number,
	// so a hit compares it without reading the name behind the token. A
	// number is never reused or dropped, since gateways hold theirs; the
	// names are those of the APIs configured and stored, a handful.
	apis map[string]uint32
	// unknown holds the digests the store had no token for, and when it
	// said so.
	unknown map[keygate.TokenDigest]time.Time
	// generation counts invalidations (and the feed becoming ready); a
	// load that started before one does not cache its result, so a revoke
	// racing a cache fill cannot leave the revoked token cached.
	generation atomic.Uint64
	// feed says whether entries may answer (see feedState); guarded by
	// mu, with feedDownSince (when the feed last stopped, zero while it
	// follows or has not stopped yet) and followingSince (when it began
	// following last).
	feed           feedState
	feedDownSince  time.Time
	followingSince time.Time
	// feedRestarts counts the feed's restarts after it stopped.
	feedRestarts atomic.Uint64
	// created counts token creations, which leave cached tokens alone
	// but make a read that began before one unfit to cache as unknown.
	created atomic.Uint64
	loads   singleflight.Group
	// hits and misses count token lookups answered from the cache and
	// not, for the hit rate operators size max_entries by.
	hits, misses atomic.Uint64
	storeDown    atomic.Bool
}

// feedState is where the cache stands with its change feed.
type feedState int

const (
	// noFeed: Follow was never called (a cache of a process that makes
	// every change itself, or a test); entries answer for their TTL.
	noFeed feedState = iota
	// feedStarting: Follow was called and its feed does not yet know
	// where it begins.
	feedStarting
	// following: every change committed from now on will be applied.
	following
	// feedRestarting: the feed stopped while Follow's context lasts; it
	// is started again, with backoff, until it knows where it begins.
	feedRestarting
	// feedReconnecting: the feed lost the store and is retrying by itself;
	// changes committed meanwhile arrive only once it is back, caught up
	// on them, which it says before it follows again.
	feedReconnecting
	// feedStopped: Follow's context ended.
	feedStopped
)

// String names the state as /readyz reports it.
func (s feedState) String() string {
	switch s {
	case feedStarting:
		return "starting"
	case following:
		return "following"
	case feedRestarting:
		return "restarting"
	case feedReconnecting:
		return "reconnecting"
	case feedStopped:
		return "stopped"
	}
	return "none"
}

// answersLocked reports whether cached entries may answer without asking
// the store: only while every change committed from now on reaches the
// cache. Otherwise a change may go by unseen, so every lookup reads the
// store and entries only stand in for it when it fails (stale_if_error).
func (t *Tokens) answersLocked() bool {
	return t.feed == noFeed || t.feed == following
}

// keepsLocked reports whether a read that began at generation gen may be
// cached: no change arrived since, and the feed did not begin (again),
// which drops everything read before.
func (t *Tokens) keepsLocked(gen uint64) bool {
	return t.generation.Load() == gen
}

// cached is a value read from the store and when it was read.
type cached[T any] struct {
	value   T
	fetched time.Time
}

// tokenEntry is a cached token with what a hit needs beside it: when it
// was read, its organization's slot, and what a request checks of the
// token (its facts), so one map lookup answers and decides without
// reading the token.
type tokenEntry struct {
	tok *keygate.Token
	org *orgSlot
	// fetched is when the token was read, as time since Tokens.epoch:
	// 8 bytes where a time.Time takes 24, in every one of the map's slots,
	// and as monotonic as the clock's readings.
	fetched time.Duration
	facts   tokenFacts
}

// tokenFacts are what a request checks of a token found by a digest,
// copied from it when it is cached: the token behind the entry's pointer
// is a miss to memory of its own (and its expiry and stored hash more),
// which every request paid. The token never changes while cached (a
// change drops the entry), so neither do they.
type tokenFacts struct {
	// expires is the token's expiry, in Unix nanoseconds (MaxInt64:
	// never); accepted is when the digest it was found by stops being
	// one of its secrets: never (MaxInt64) for its current one, when the
	// grace ends for the one the last rotation replaced, at once
	// (MinInt64) for any other.
	expires, accepted int64
	// api is the number of the token's API (Tokens.apis).
	api     uint32
	revoked bool
}

// factsOf returns what a request checks of tok when found by d; api is
// the number of tok's API.
func factsOf(tok *keygate.Token, d keygate.TokenDigest, api uint32) tokenFacts {
	f := tokenFacts{expires: math.MaxInt64, accepted: math.MinInt64, api: api, revoked: tok.RevokedAt != nil}
	if tok.ExpiresAt != nil {
		f.expires = unixNanos(*tok.ExpiresAt)
	}
	switch {
	case d.Is(tok.Hash):
		f.accepted = math.MaxInt64
	case tok.PreviousHash != "" && d.Is(tok.PreviousHash) && tok.PreviousHashExpiresAt != nil:
		f.accepted = unixNanos(*tok.PreviousHashExpiresAt)
	}
	return f
}

// unixNanos is t in Unix nanoseconds, held to int64's range (the years
// 1678 to 2262): a time past either end compares as that end, so a
// comparison with a time inside the range answers as time.Time's does.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minUnixNanos):
		return math.MinInt64
	case t.After(maxUnixNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var minUnixNanos, maxUnixNanos = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// refusal is why the token with facts f is refused at now (Unix
// nanoseconds), nil when it is not: revoked, or found by a secret it no
// longer has (a rotated token's old secret fails once its grace ends, on
// every instance at the same moment, cached or not), is invalid; past
// its expiry, expired. Whether it is the API's is the caller's check.
func (f tokenFacts) refusal(now int64) error {
	switch {
	case f.revoked || now >= f.accepted:
		return errTokenInvalid
	case now >= f.expires:
		return errTokenExpired
	}
	return nil
}

// orgSlot holds an organization as cached: every cached token of the
// organization points at it. A read replaces its value, a change empties
// it (value nil), and the slot stays while any entry points at it, so
// the entries' pointers never go stale; the last entry to go takes it
// along. Its fields are read and written under Tokens.mu.
type orgSlot struct {
	cached[*keygate.Organization]
	id string
	// entries counts the token entries that point at the slot.
	entries int
}

// TokensOptions tunes the cache; zero values take the defaults.
type TokensOptions struct {
	TTL          time.Duration // default 30s
	StaleIfError time.Duration // default 5m; negative disables
	// StoreTimeout bounds each store read; default DefaultStoreTimeout.
	StoreTimeout time.Duration
	MaxEntries   int // default 100000 tokens
	// NegativeTTL is how long an unknown token's hash is remembered as
	// unknown; default DefaultNegativeTTL, negative disables.
	NegativeTTL time.Duration
	// MaxNegativeEntries bounds the unknown hashes remembered; default
	// DefaultMaxNegativeEntries.
	MaxNegativeEntries int
	Now                func() time.Time
	Logger             *slog.Logger
}

// DefaultStoreTimeout bounds a store read on the request path when the
// config sets none: long enough for a busy database, short enough that an
// outage answers 503 (or a cached token) in seconds rather than hanging.
const DefaultStoreTimeout = 2 * time.Second

// Negative cache defaults: a few seconds spares the store a client that
// repeats an unknown token, and bounds how long a token created while the
// change feed is down can be refused where it was tried before.
const (
	DefaultNegativeTTL        = 5 * time.Second
	DefaultMaxNegativeEntries = 10_000
)

// NewTokens returns a token cache over store.
func NewTokens(store TokenStore, opts TokensOptions) *Tokens {
	t := &Tokens{
		store: store, ttl: opts.TTL, staleIfError: opts.StaleIfError, storeTimeout: opts.StoreTimeout,
		maxEntries: opts.MaxEntries, negativeTTL: opts.NegativeTTL, maxNegative: opts.MaxNegativeEntries,
		now: opts.Now, logger: opts.Logger,
		tokens: map[keygate.TokenDigest]tokenEntry{}, hashes: map[string]keygate.TokenDigest{}, rotated: map[string][]keygate.TokenDigest{},
		orgs: map[string]*orgSlot{}, apis: map[string]uint32{},
		unknown: map[keygate.TokenDigest]time.Time{},
	}
	if t.negativeTTL == 0 {
		t.negativeTTL = DefaultNegativeTTL
	}
	if t.maxNegative <= 0 {
		t.maxNegative = DefaultMaxNegativeEntries
	}
	if t.ttl <= 0 {
		t.ttl = 30 * time.Second
	}
	if t.staleIfError == 0 {
		t.staleIfError = 5 * time.Minute
	}
	if t.storeTimeout <= 0 {
		t.storeTimeout = DefaultStoreTimeout
	}
	if t.maxEntries <= 0 {
		t.maxEntries = 100000
	}
	t.identities = newIdentityBudget(maxIdentitiesFor(t))
	if t.now == nil {
		t.now = time.Now
	}
	t.epoch = t.now()
	if t.logger == nil {
		t.logger = slog.Default()
	}
	return t
}

// Lookup returns the token with the given digest and its organization.
// Unknown tokens are ETOKENINVALID; a store failure with nothing usable in
// the cache is EUNAVAILABLE; a caller whose ctx ended first gets
// ECANCELED. Revocation and expiry are the caller's checks.
func (t *Tokens) Lookup(ctx context.Context, d keygate.TokenDigest) (*keygate.Token, *keygate.Organization, error) {
	now := t.now()
	v := t.peek(d, now)
	tokFresh := v.answers && v.found && t.age(v.entry, now) < t.tokenTTL(v.entry)
	if v.unknown || tokFresh {
		t.hits.Add(1)
	} else {
		t.misses.Add(1)
	}
	if v.unknown {
		return nil, nil, errTokenInvalid
	}
	if tokFresh && v.orgFresh(now, t.ttl) {
		return v.entry.tok, v.org.value, nil
	}
	tok, err := t.token(ctx, d, v)
	if err != nil {
		return nil, nil, err
	}
	org, err := t.organization(ctx, tok.OrganizationID)
	if err != nil {
		return nil, nil, err
	}
	return tok, org, nil
}

// APIRef is an API as CachedFor knows it: its name and the number the
// cache's entries carry for it. The zero APIRef is no API's.
type APIRef struct {
	name string
	n    uint32
}

// APIRef returns the reference of the API named name, for CachedFor.
func (t *Tokens) APIRef(name string) APIRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	return APIRef{name: name, n: t.apiNumberLocked(name)}
}

// apiNumberLocked returns the number of the API named name, numbering it
// when it has none.
func (t *Tokens) apiNumberLocked(name string) uint32 {
	n, ok := t.apis[name]
	if !ok {
		n = uint32(len(t.apis) + 1)
		t.apis[name] = n
	}
	return n
}

// CachedFor answers from the cache alone, without asking the store, for
// a request to api at now: the token with the given digest and its
// organization when both are cached and fresh and the token passes the
// request's checks; ETOKENINVALID when the digest is cached as unknown,
// or its token is another API's, revoked, or found by a secret it no
// longer has; ETOKENEXPIRED when it has expired. ok is false when the
// store would have to be asked. It is how a client address that has
// spent its failed-authentication budget can still use a token this
// instance already verified, and why an unknown token and a deleted one
// take the same path.
//
// The checks read what the entry holds, not the token: a hit reads the
// map's slot and the organization's and nothing else.
func (t *Tokens) CachedFor(api APIRef, d keygate.TokenDigest, now time.Time) (tok *keygate.Token, org *keygate.Organization, ok bool, err error) {
	at := t.now()
	v := t.peek(d, at)
	if v.unknown {
		t.hits.Add(1)
		return nil, nil, true, errTokenInvalid
	}
	if !v.answers || !v.found || t.age(v.entry, at) >= t.tokenTTL(v.entry) || !v.orgFresh(at, t.ttl) {
		return nil, nil, false, nil
	}
	t.hits.Add(1)
	if v.entry.facts.api != api.n {
		return nil, nil, true, errTokenInvalid
	}
	if err := v.entry.facts.refusal(now.UnixNano()); err != nil {
		return nil, nil, true, err
	}
	return v.entry.tok, v.org.value, true, nil
}

// accepts is CachedFor's checks of a token Lookup returned for d: nil
// when it authenticates a request to api at now.
func accepts(api APIRef, tok *keygate.Token, d keygate.TokenDigest, now time.Time) error {
	if tok.API != api.name {
		return errTokenInvalid
	}
	return factsOf(tok, d, 0).refusal(now.UnixNano())
}

// view is what the cache holds for a digest, read in one critical
// section: whether entries may answer without the store (answersLocked),
// whether the store called it unknown less than NegativeTTL ago, its
// entry if any, and the entry's organization as cached then.
type view struct {
	answers bool
	unknown bool
	found   bool
	entry   tokenEntry
	org     cached[*keygate.Organization]
}

func (t *Tokens) peek(d keygate.TokenDigest, now time.Time) view {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v := view{answers: t.answersLocked()}
	if v.unknown = v.answers && t.knownUnknownLocked(d, now); v.unknown {
		return v
	}
	if v.entry, v.found = t.tokens[d]; v.found {
		v.org = v.entry.org.cached
	}
	return v
}

// age is how long before now the entry's token was read.
func (t *Tokens) age(e tokenEntry, now time.Time) time.Duration {
	return now.Sub(t.epoch) - e.fetched
}

// orgFresh reports whether the view's organization is cached, younger
// than ttl, and may answer.
func (v *view) orgFresh(now time.Time, ttl time.Duration) bool {
	return v.answers && v.org.value != nil && now.Sub(v.org.fetched) < ttl
}

// knownUnknownLocked reports whether the store said d is unknown less
// than NegativeTTL ago.
func (t *Tokens) knownUnknownLocked(d keygate.TokenDigest, now time.Time) bool {
	at, ok := t.unknown[d]
	return ok && now.Sub(at) < t.negativeTTL
}

// token answers from the entry v found while it is fresh and may answer,
// and otherwise reads the store (see cachedRead).
func (t *Tokens) token(ctx context.Context, d keygate.TokenDigest, v view) (*keygate.Token, error) {
	var entry *cached[*keygate.Token]
	if v.found {
		entry = &cached[*keygate.Token]{value: v.entry.tok, fetched: t.epoch.Add(v.entry.fetched)}
	}
	ttl := t.tokenTTL(v.entry)
	if !v.answers {
		ttl = 0
	}
	return cachedRead(t, ctx, "t"+string(d[:]), entry, ttl, func(ctx context.Context, gen uint64) (*keygate.Token, error) {
		created := t.created.Load()
		tok, err := t.store.FindTokenByHash(ctx, d.String())
		switch {
		case err == nil:
			t.storeTokenIfCurrent(gen, d, tok)
		case keygate.ErrorCode(err) == keygate.ENOTFOUND:
			t.forgetDigest(d)
			t.storeUnknownIfCurrent(gen, created, d)
		}
		return tok, err
	})
}

// forgetDigest drops the token cached under d, which the store just said
// it has no token for: while the feed is down no change would drop it,
// and stale_if_error must not answer with it in a later outage.
func (t *Tokens) forgetDigest(d keygate.TokenDigest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.tokens[d]; ok {
		t.dropTokenLocked(e.tok.ID)
	}
}

func (t *Tokens) organization(ctx context.Context, id string) (*keygate.Organization, error) {
	var entry *cached[*keygate.Organization]
	ttl := t.ttl
	t.mu.RLock()
	if slot := t.orgs[id]; slot != nil && slot.value != nil {
		entry = &cached[*keygate.Organization]{value: slot.value, fetched: slot.fetched}
	}
	if !t.answersLocked() {
		ttl = 0
	}
	t.mu.RUnlock()
	// A token whose organization is gone is as good as deleted: ENOTFOUND
	// answers as an invalid token, like an unknown one.
	return cachedRead(t, ctx, "o"+id, entry, ttl, func(ctx context.Context, gen uint64) (*keygate.Organization, error) {
		org, err := t.store.FindOrganizationByID(ctx, id)
		switch {
		case err == nil:
			t.mu.Lock()
			// Kept only in the slot of a cached token: an organization
			// no entry points at would never be dropped.
			if slot := t.orgs[id]; slot != nil && t.keepsLocked(gen) {
				slot.cached = cached[*keygate.Organization]{value: org, fetched: t.now()}
			}
			t.mu.Unlock()
		case keygate.ErrorCode(err) == keygate.ENOTFOUND:
			// As forgetDigest: no stale answer for a deleted organization.
			t.mu.Lock()
			if slot := t.orgs[id]; slot != nil {
				slot.cached = cached[*keygate.Organization]{}
			}
			t.mu.Unlock()
		}
		return org, err
	})
}

// holdOrgLocked returns the slot of the organization with id for an entry
// about to point at it, making an empty one if there is none.
func (t *Tokens) holdOrgLocked(id string) *orgSlot {
	slot := t.orgs[id]
	if slot == nil {
		slot = &orgSlot{id: id}
		t.orgs[id] = slot
	}
	slot.entries++
	return slot
}

// releaseOrgLocked is an entry that pointed at slot going: the last one
// takes the slot along.
func (t *Tokens) releaseOrgLocked(slot *orgSlot) {
	if slot.entries--; slot.entries == 0 {
		delete(t.orgs, slot.id)
	}
}

// tokenTTL is how long entry answers without asking the store: a deleted
// token no longer than an unknown one (NegativeTTL), so that neither
// refusal outlives the other and how long a refusal takes cannot tell a
// token that existed once from one that never did; any other for TTL.
func (t *Tokens) tokenTTL(entry tokenEntry) time.Duration {
	if entry.facts.revoked && t.negativeTTL > 0 && t.negativeTTL < t.ttl {
		return t.negativeTTL
	}
	return t.ttl
}

// cachedRead answers from entry while it is younger than ttl, and
// otherwise reads through load (once per key at a time, see read). When
// the read fails an
// entry younger than StaleIfError answers instead; while the store is known
// to be down such an entry answers at once and the read goes on in the
// background.
func cachedRead[T any](t *Tokens, ctx context.Context, key string, entry *cached[T], ttl time.Duration, load func(context.Context, uint64) (T, error)) (T, error) {
	var zero T
	now := t.now()
	if entry != nil && now.Sub(entry.fetched) < ttl {
		return entry.value, nil
	}
	untyped := func(ctx context.Context, gen uint64) (any, error) { return load(ctx, gen) }
	stale := entry != nil && t.staleIfError > 0 && now.Sub(entry.fetched) < t.staleIfError
	if stale && t.storeDown.Load() {
		t.refresh(key, untyped)
		return entry.value, nil
	}
	v, err := t.read(ctx, key, untyped)
	switch code := keygate.ErrorCode(err); {
	case err == nil:
		return v.(T), nil
	case code == keygate.ENOTFOUND:
		return zero, errTokenInvalid
	case code == keygate.ECANCELED:
		return zero, err
	case stale:
		return entry.value, nil
	default:
		return zero, errStoreUnavailable
	}
}

var (
	errStoreUnavailable = keygate.Errorf(keygate.EUNAVAILABLE, "Token store unavailable.")
	errStoreTimeout     = errors.New("the token store did not answer within the store timeout")
)

// read runs load once per key at a time under a context of its own (see
// detached). Each caller waits for the shared result, its own ctx, or
// StoreTimeout, whichever comes first: no caller waits longer than
// StoreTimeout however long the store takes to give up, and a caller that
// leaves fails no one else.
//
// Callers share a read only within one generation: a caller that comes
// after an invalidation (a revocation applied here) starts a read of its
// own instead of taking the answer of one that may have read the store
// before the change.
func (t *Tokens) read(ctx context.Context, key string, load func(context.Context, uint64) (any, error)) (any, error) {
	gen := t.generation.Load()
	result := t.loads.DoChan(loadKey(key, gen), t.detached(ctx, gen, load))
	timeout := time.NewTimer(t.storeTimeout)
	defer timeout.Stop()
	select {
	case r := <-result:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, canceled(ctx)
	case <-timeout.C:
		t.markStoreDown(errStoreTimeout)
		return nil, errStoreTimeout
	}
}

// refresh starts load for key in the background unless one of this
// generation is running.
func (t *Tokens) refresh(key string, load func(context.Context, uint64) (any, error)) {
	gen := t.generation.Load()
	t.loads.DoChan(loadKey(key, gen), t.detached(context.Background(), gen, load))
}

// loadKey names the read of key begun at generation gen.
func loadKey(key string, gen uint64) string {
	return string(strconv.AppendUint(append([]byte(key), '@'), gen, 36))
}

// detached wraps load for the singleflight group: it runs under parent's
// values without its cancellation, ends after StoreTimeout, and records
// whether the store answered.
func (t *Tokens) detached(parent context.Context, gen uint64, load func(context.Context, uint64) (any, error)) func() (any, error) {
	return func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), t.storeTimeout)
		defer cancel()
		v, err := load(ctx, gen)
		if err == nil || keygate.ErrorCode(err) == keygate.ENOTFOUND {
			t.markStoreUp()
		} else {
			t.markStoreDown(err)
		}
		return v, err
	}
}

// canceled is the error for a caller whose context ended before the store
// answered: the client went away (or gave up), which says nothing about
// the store.
func canceled(ctx context.Context) error {
	return fmt.Errorf("%w: %w", errCanceled, ctx.Err())
}
func (t *Tokens) storeTokenIfCurrent(gen uint64, d keygate.TokenDigest, tok *keygate.Token) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.keepsLocked(gen) {
		return
	}
	if len(t.tokens) >= t.maxEntries {
		t.evictLocked()
	}
	old, cached := t.tokens[d]
	if !cached {
		if _, has := t.hashes[tok.ID]; !has {
			t.hashes[tok.ID] = d
		} else {
			t.rotated[tok.ID] = append(t.rotated[tok.ID], d)
		}
	}
	t.tokens[d] = tokenEntry{
		tok: tok, org: t.holdOrgLocked(tok.OrganizationID), fetched: t.now().Sub(t.epoch),
		facts: factsOf(tok, d, t.apiNumberLocked(tok.API)),
	}
	if cached {
		t.releaseOrgLocked(old.org) // after the hold: the same slot stays
	}
}

// storeUnknownIfCurrent remembers that the store has no token with hash,
// unless a change or a creation arrived since the read began (gen and
// created, read then): it may be this token's. Nor while entries do not
// answer: a token created meanwhile would never clear it, and an unknown
// hash is no stale answer. When full, expired entries go first, then a
// random tenth.
func (t *Tokens) storeUnknownIfCurrent(gen, created uint64, d keygate.TokenDigest) {
	if t.negativeTTL <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.answersLocked() || !t.keepsLocked(gen) || t.created.Load() != created {
		return
	}
	now := t.now()
	if len(t.unknown) >= t.maxNegative {
		evict.MakeRoom(t.unknown, t.maxNegative, 10, func(at time.Time) bool { return now.Sub(at) >= t.negativeTTL })
	}
	t.unknown[d] = now
}

// CacheStats returns how many token lookups the cache answered and how
// many went to the store, and how many tokens it holds.
func (t *Tokens) CacheStats() (hits, misses uint64, entries int) {
	t.mu.RLock()
	entries = len(t.tokens)
	t.mu.RUnlock()
	return t.hits.Load(), t.misses.Load(), entries
}

// evictLocked drops about a tenth of the cache in map order, which Go
// randomises: cheap, and a dropped entry only costs one store read.
func (t *Tokens) evictLocked() {
	n := t.maxEntries / 10
	if n < 1 {
		n = 1
	}
	for _, e := range t.tokens {
		t.dropTokenLocked(e.tok.ID)
		n--
		if n == 0 {
			return
		}
	}
}

// Apply drops whatever a change makes stale.
func (t *Tokens) Apply(c keygate.Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.Kind == keygate.ChangeTokenCreated {
		// The token's hash may be cached as unknown. Its own entry, if
		// this instance already read it, is fresh: the change can arrive
		// after the first request, and dropping the entry (or refusing
		// to cache a read in flight) would leave the token without
		// stale_if_error cover in an outage.
		t.created.Add(1)
		clear(t.unknown)
		return
	}
	t.generation.Add(1)
	switch c.Kind {
	case keygate.ChangeToken:
		t.dropTokenLocked(c.ID)
		// A new secret's hash may be cached as unknown; only the id is
		// known here.
		clear(t.unknown)
	case keygate.ChangeOrganization:
		// Emptied, not deleted: its tokens' entries point at the slot,
		// and take it along when the last of them goes.
		if slot := t.orgs[c.ID]; slot != nil {
			slot.cached = cached[*keygate.Organization]{}
		}
	default:
		// Unknown kinds come from newer instances; dropping everything is
		// always safe.
		t.dropAllLocked()
	}
}

// dropAllLocked empties the cache.
func (t *Tokens) dropAllLocked() {
	t.tokens = map[keygate.TokenDigest]tokenEntry{}
	t.hashes = map[string]keygate.TokenDigest{}
	t.rotated = map[string][]keygate.TokenDigest{}
	t.orgs = map[string]*orgSlot{}
	clear(t.unknown)
}

// dropTokenLocked forgets every cached hash of the token.
func (t *Tokens) dropTokenLocked(id string) {
	if d, ok := t.hashes[id]; ok {
		t.dropEntryLocked(d)
	}
	for _, d := range t.rotated[id] {
		t.dropEntryLocked(d)
	}
	delete(t.hashes, id)
	delete(t.rotated, id)
}

// dropEntryLocked deletes the entry of d and lets go of its
// organization's slot.
func (t *Tokens) dropEntryLocked(d keygate.TokenDigest) {
	if e, ok := t.tokens[d]; ok {
		delete(t.tokens, d)
		t.releaseOrgLocked(e.org)
	}
}

// Follow applies the feed's changes in the background until ctx ends, and
// returns a channel closed when it has stopped. From the call until the
// feed knows where it begins no entry answers (each lookup asks the
// store); where it begins, everything cached before is dropped: call it
// before serving, so no token answers that a change the feed will never
// deliver made stale.
//
// A feed that stops while ctx lasts (an error, or a return it should not
// make) is started again with capped exponential backoff and jitter, from
// FeedRestartMin to FeedRestartMax, until ctx ends: an instance never
// stops caching for good. While it is down the cache is as it was before
// the feed began: every lookup reads the store, what it holds answers only
// when the store fails, and the restarted feed's beginning drops it all,
// since the changes committed in between are never delivered. The first
// stop of an outage is logged at warn level, the retries at debug, and
// the recovery at info. A feed that says it does not follow for now
// (it lost the store and reconnects by itself) is no stop: lookups read
// the store until it says it follows again, caught up, and nothing cached
// is dropped; the feed logs that outage itself.
func (t *Tokens) Follow(ctx context.Context, feed keygate.ChangeFeed) <-chan struct{} {
	t.setFeed(feedStarting, nil)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t.follow(ctx, feed)
		t.setFeed(feedStopped, nil)
	}()
	return stopped
}

// Bounds of the wait before a stopped feed is started again: it doubles
// from FeedRestartMin on each stop up to FeedRestartMax, and a feed that
// followed for FeedRestartMax before it stopped starts over at
// FeedRestartMin.
const (
	FeedRestartMin = 100 * time.Millisecond
	FeedRestartMax = 30 * time.Second
)

// follow runs feed until ctx ends, starting it again whenever it stops.
func (t *Tokens) follow(ctx context.Context, feed keygate.ChangeFeed) {
	restart := backoff.Backoff{Initial: FeedRestartMin, Max: FeedRestartMax}
	attempt := 0
	for {
		err := feed.WatchChanges(ctx, t.feedFollowing(), t.Apply)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the change feed returned while it should have kept following")
		}
		var followed time.Duration
		first := t.setFeed(feedRestarting, &followed)
		if followed >= FeedRestartMax {
			restart.Reset()
		}
		if first {
			attempt = 1
		} else {
			attempt++
		}
		// Jittered: instances that lost one database together do not
		// come back to it in step.
		wait := restart.Next()
		if first {
			t.logger.Warn("token cache's change feed stopped; every lookup reads the store until it follows again",
				"error", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			t.logger.Debug("token cache's change feed stopped again",
				"error", err, "attempt", attempt, "retry_in", wait.Round(time.Millisecond))
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
		t.feedRestarts.Add(1)
	}
}

// feedFollowing returns what one run of the feed calls to say whether it
// follows. Its first "following" is where the run begins, which drops
// everything cached before; a later one ends a reconnection the feed
// caught up from, which keeps it. A "not following" before the run began
// changes nothing: the cache does not answer yet.
func (t *Tokens) feedFollowing() func(bool) {
	began := false
	return func(ok bool) {
		switch {
		case ok && !began:
			began = true
			t.setFeed(following, nil)
		case ok:
			t.feedCaughtUp()
		case began:
			t.setFeed(feedReconnecting, nil)
		}
	}
}

// feedCaughtUp records that the feed follows again after reconnecting.
// What the cache holds stays: every change committed while the feed was
// away has been applied, and anything read meanwhile either saw a change
// already or was dropped when the catch-up applied it.
func (t *Tokens) feedCaughtUp() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.feed == feedReconnecting {
		t.feed = following
		t.generation.Add(1)
	}
}

// setFeed records where the cache stands with its feed. Every change of
// state counts as an invalidation, so a read that began before it is not
// kept after it; the feed beginning drops everything cached before (a
// change may have gone by unseen), and the feed stopping or reconnecting
// forgets the unknown hashes, which no creation would clear while it is
// down. Following again after reconnecting is feedCaughtUp's.
//
// Stopping (feedRestarting) reports whether this begins an outage and
// sets *followed to how long the feed had followed, if it had; following
// after an outage logs the recovery.
func (t *Tokens) setFeed(s feedState, followed *time.Duration) (first bool) {
	t.mu.Lock()
	now := t.now()
	prev, downSince := t.feed, t.feedDownSince
	t.feed = s
	t.generation.Add(1)
	switch s {
	case following:
		t.dropAllLocked()
		t.followingSince, t.feedDownSince = now, time.Time{}
	case feedRestarting:
		clear(t.unknown)
		if prev == following && followed != nil {
			*followed = now.Sub(t.followingSince)
		}
		if first = downSince.IsZero(); first {
			t.feedDownSince = now
		}
	default:
		clear(t.unknown)
	}
	t.mu.Unlock()
	if s == following && !downSince.IsZero() {
		t.logger.Info("token cache's change feed follows again; entries answer again",
			"down_for", now.Sub(downSince).Round(time.Millisecond), "restarts", t.feedRestarts.Load())
	}
	return first
}

// FeedState says where the cache stands with its change feed: "following"
// (entries answer), "starting" (Follow was called, the feed does not yet
// know where it begins), "reconnecting" (the feed lost the store and is
// reconnecting by itself), "restarting" (the feed stopped and is being
// started again), "stopped" (Follow's context ended) or "none" (Follow
// was never called: entries answer for their TTL). Only while following,
// or with none, does a hit spare the store a read.
func (t *Tokens) FeedState() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.feed.String()
}

// FeedRestarts counts the times the change feed was started again after
// it stopped.
func (t *Tokens) FeedRestarts() uint64 { return t.feedRestarts.Load() }

// Following reports whether the feed is delivering changes: every change
// committed from now on will reach the cache.
func (t *Tokens) Following() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.feed == following
}

// UnknownLen returns the number of hashes cached as unknown.
func (t *Tokens) UnknownLen() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.unknown)
}

// Len returns the number of cached tokens.
func (t *Tokens) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.tokens)
}

// StoreDown reports whether the last store read failed.
func (t *Tokens) StoreDown() bool { return t.storeDown.Load() }

func (t *Tokens) markStoreDown(err error) {
	if t.storeDown.Swap(true) {
		return
	}
	if t.staleIfError > 0 {
		t.logger.Warn("token store unreachable; serving cached tokens up to stale_if_error old while it recovers",
			"stale_if_error", t.staleIfError.String(), "error", err)
		return
	}
	// Nothing is served stale: a token whose cache entry is past its TTL
	// is refused like one never cached.
	t.logger.Warn("token store unreachable; refusing tokens not cached within their TTL until it recovers (stale_if_error is off)", "error", err)
}

func (t *Tokens) markStoreUp() {
	if t.storeDown.Swap(false) {
		t.logger.Info("token store reachable again")
	}
}
