package gateway

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/keygate/keygate"
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
// feed's latency. While the store is down, entries younger than
// StaleIfError keep answering, so known tokens keep working through a
// database restart.
type Tokens struct {
	store        TokenStore
	ttl          time.Duration
	staleIfError time.Duration
	maxEntries   int
	now          func() time.Time
	logger       *slog.Logger

	mu     sync.RWMutex
	tokens map[string]*cachedToken // by token hash
	// hashes maps a token id to the hashes it is cached under (a rotated
	// token has two while its old secret's grace lasts), for invalidation
	// by id.
	hashes map[string][]string
	orgs   map[string]*cachedOrg // by organization id
	// generation counts invalidations; a load that started before one does
	// not cache its result, so a revoke racing a cache fill cannot leave the
	// revoked token cached.
	generation atomic.Uint64
	loads      singleflight.Group
	storeDown  atomic.Bool
}

type cachedToken struct {
	token   *keygate.Token
	fetched time.Time
}

type cachedOrg struct {
	org     *keygate.Organization
	fetched time.Time
}

// TokensOptions tunes the cache; zero values take the defaults.
type TokensOptions struct {
	TTL          time.Duration // default 30s
	StaleIfError time.Duration // default 5m; negative disables
	MaxEntries   int           // default 100000 tokens
	Now          func() time.Time
	Logger       *slog.Logger
}

// NewTokens returns a token cache over store.
func NewTokens(store TokenStore, opts TokensOptions) *Tokens {
	t := &Tokens{
		store: store, ttl: opts.TTL, staleIfError: opts.StaleIfError, maxEntries: opts.MaxEntries,
		now: opts.Now, logger: opts.Logger,
		tokens: map[string]*cachedToken{}, hashes: map[string][]string{}, orgs: map[string]*cachedOrg{},
	}
	if t.ttl <= 0 {
		t.ttl = 30 * time.Second
	}
	if t.staleIfError == 0 {
		t.staleIfError = 5 * time.Minute
	}
	if t.maxEntries <= 0 {
		t.maxEntries = 100000
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.logger == nil {
		t.logger = slog.Default()
	}
	return t
}

// Lookup returns the token with the given hash and its organization.
// Unknown tokens are ETOKENINVALID; a store failure with nothing usable in
// the cache is EUNAVAILABLE. Revocation and expiry are the caller's checks.
func (t *Tokens) Lookup(ctx context.Context, hash string) (*keygate.Token, *keygate.Organization, error) {
	tok, err := t.token(ctx, hash)
	if err != nil {
		return nil, nil, err
	}
	org, err := t.organization(ctx, tok.OrganizationID)
	if err != nil {
		return nil, nil, err
	}
	return tok, org, nil
}

func (t *Tokens) token(ctx context.Context, hash string) (*keygate.Token, error) {
	t.mu.RLock()
	entry := t.tokens[hash]
	t.mu.RUnlock()
	now := t.now()
	if entry != nil && now.Sub(entry.fetched) < t.ttl {
		return entry.token, nil
	}
	v, err, _ := t.loads.Do("t"+hash, func() (any, error) {
		gen := t.generation.Load()
		tok, err := t.store.FindTokenByHash(ctx, hash)
		if err != nil {
			return nil, err
		}
		t.storeTokenIfCurrent(gen, hash, tok)
		return tok, nil
	})
	switch code := keygate.ErrorCode(err); {
	case err == nil:
		t.markStoreUp()
		return v.(*keygate.Token), nil
	case code == keygate.ENOTFOUND:
		t.markStoreUp()
		return nil, keygate.Errorf(keygate.ETOKENINVALID, "Invalid API token.")
	case entry != nil && t.staleIfError > 0 && now.Sub(entry.fetched) < t.staleIfError:
		t.markStoreDown(err)
		return entry.token, nil
	default:
		t.markStoreDown(err)
		return nil, keygate.Errorf(keygate.EUNAVAILABLE, "Token store unavailable.")
	}
}

func (t *Tokens) organization(ctx context.Context, id string) (*keygate.Organization, error) {
	t.mu.RLock()
	entry := t.orgs[id]
	t.mu.RUnlock()
	now := t.now()
	if entry != nil && now.Sub(entry.fetched) < t.ttl {
		return entry.org, nil
	}
	v, err, _ := t.loads.Do("o"+id, func() (any, error) {
		gen := t.generation.Load()
		org, err := t.store.FindOrganizationByID(ctx, id)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		if t.generation.Load() == gen {
			t.orgs[id] = &cachedOrg{org: org, fetched: t.now()}
		}
		t.mu.Unlock()
		return org, nil
	})
	switch code := keygate.ErrorCode(err); {
	case err == nil:
		return v.(*keygate.Organization), nil
	case code == keygate.ENOTFOUND:
		// A token whose organization is gone is as good as deleted.
		return nil, keygate.Errorf(keygate.ETOKENINVALID, "Invalid API token.")
	case entry != nil && t.staleIfError > 0 && now.Sub(entry.fetched) < t.staleIfError:
		t.markStoreDown(err)
		return entry.org, nil
	default:
		t.markStoreDown(err)
		return nil, keygate.Errorf(keygate.EUNAVAILABLE, "Token store unavailable.")
	}
}

func (t *Tokens) storeTokenIfCurrent(gen uint64, hash string, tok *keygate.Token) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.generation.Load() != gen {
		return
	}
	if len(t.tokens) >= t.maxEntries {
		t.evictLocked()
	}
	if _, cached := t.tokens[hash]; !cached {
		t.hashes[tok.ID] = append(t.hashes[tok.ID], hash)
	}
	t.tokens[hash] = &cachedToken{token: tok, fetched: t.now()}
}

// evictLocked drops about a tenth of the cache in map order, which Go
// randomises: cheap, and a dropped entry only costs one store read.
func (t *Tokens) evictLocked() {
	n := t.maxEntries / 10
	if n < 1 {
		n = 1
	}
	for _, e := range t.tokens {
		t.dropTokenLocked(e.token.ID)
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
	t.generation.Add(1)
	switch c.Kind {
	case keygate.ChangeToken:
		t.dropTokenLocked(c.ID)
	case keygate.ChangeOrganization:
		delete(t.orgs, c.ID)
	default:
		// Unknown kinds come from newer instances; dropping everything is
		// always safe.
		t.tokens = map[string]*cachedToken{}
		t.hashes = map[string][]string{}
		t.orgs = map[string]*cachedOrg{}
	}
}

// dropTokenLocked forgets every cached hash of the token.
func (t *Tokens) dropTokenLocked(id string) {
	for _, hash := range t.hashes[id] {
		delete(t.tokens, hash)
	}
	delete(t.hashes, id)
}

// Follow applies the feed's changes until ctx ends. Run it in a goroutine.
func (t *Tokens) Follow(ctx context.Context, feed keygate.ChangeFeed) {
	err := feed.WatchChanges(ctx, t.Apply)
	if err != nil && ctx.Err() == nil {
		t.logger.Error("token cache stopped following store changes", "error", err)
	}
}

// Len returns the number of cached tokens.
func (t *Tokens) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.tokens)
}

// Invalidations counts the changes applied so far.
func (t *Tokens) Invalidations() uint64 { return t.generation.Load() }

// StoreDown reports whether the last store read failed.
func (t *Tokens) StoreDown() bool { return t.storeDown.Load() }

func (t *Tokens) markStoreDown(err error) {
	if !t.storeDown.Swap(true) {
		t.logger.Warn("token store unreachable; serving cached tokens while it recovers", "error", err)
	}
}

func (t *Tokens) markStoreUp() {
	if t.storeDown.Swap(false) {
		t.logger.Info("token store reachable again")
	}
}
