package gateway_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/sqlite"
)

// lookupCounter counts the token lookups that reach a store of either kind.
type lookupCounter struct {
	keygate.Store
	lookups atomic.Int64
}

func (c *lookupCounter) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	c.lookups.Add(1)
	return c.Store.FindTokenByHash(ctx, hash)
}

// instance is one keygate's token cache and cannmenus gateway over its own
// handle on a shared store, following that store's change feed.
type instance struct {
	store   *lookupCounter
	tokens  *gateway.Tokens
	applied appliedChanges // by id, the changes its cache has applied
	gw      *gateway.Gateway
	api     *keygate.API
}

func newInstance(t *testing.T, st keygate.Store, opts gateway.TokensOptions) *instance {
	t.Helper()
	in := &instance{store: &lookupCounter{Store: st}, api: menusAPI("http://127.0.0.1:1")}
	in.tokens = gateway.NewTokens(in.store, opts)
	ctx, cancel := context.WithCancel(context.Background())
	followed := in.tokens.Follow(ctx, &recordingFeed{ChangeFeed: st, applied: &in.applied})
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, in.tokens)
	limiter := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { limiter.Close() })
	resolver, _ := clientip.New(nil)
	gw, err := gateway.New(gateway.Config{API: in.api, Tokens: in.tokens, Limiter: limiter, ClientIP: resolver})
	if err != nil {
		t.Fatal(err)
	}
	in.gw = gw
	return in
}

// status is what the instance decides for a request with secret on the
// products route: 200 when it would forward, else the preset's status.
func (in *instance) status(secret string) int {
	u, _ := url.Parse("/v2/products")
	_, err := in.gw.Authorize(context.Background(), gateway.Request{
		Method: "GET", URL: u, Header: http.Header{"X-Token": {secret}}, ClientIP: clientAddr,
	})
	if err != nil {
		status, _ := in.api.Preset.Render(err)
		return status
	}
	return http.StatusOK
}

var clientAddr = netip.MustParseAddr("203.0.113.9")

// sharedStores opens two handles on one store: what two keygate instances
// (or an instance and the CLI) share.
var sharedStores = []struct {
	name string
	open func(t *testing.T) (a, b keygate.Store)
}{
	{"sqlite", func(t *testing.T) (keygate.Store, keygate.Store) {
		path := filepath.Join(t.TempDir(), "keygate.db")
		return openSQLite(t, path), openSQLite(t, path)
	}},
	{"postgres", func(t *testing.T) (keygate.Store, keygate.Store) {
		url := pgtest.NewSchema(t)
		return openPostgres(t, url), openPostgres(t, url)
	}},
}

func openSQLite(t *testing.T, path string) keygate.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openPostgres(t *testing.T, url string) keygate.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.WithPollInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Instance A refuses a well-formed token nobody has, and remembers it:
// asking again costs no store lookup. Instance B then creates a token with
// exactly that secret (a token's secret exists before it is stored), and A
// accepts it within the change feed's latency, although its negative entry
// would last an hour. The same for a rotation's new secret.
func TestTokenCreatedElsewhereIsAcceptedDespiteANegativeEntry(t *testing.T) {
	for _, s := range sharedStores {
		t.Run(s.name, func(t *testing.T) {
			stA, stB := s.open(t)
			ctx := context.Background()
			org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
			if err := stB.CreateOrganization(ctx, org); err != nil {
				t.Fatal(err)
			}
			a := newInstance(t, stA, gateway.TokensOptions{NegativeTTL: time.Hour})

			tok, secret, err := keygate.NewToken(a.api.Tokens, keygate.TokenRequest{
				OrganizationID: org.ID, API: a.api.Name, Name: "new", Scopes: []string{"products:read"}, Expiry: keygate.Expiry90Days,
			}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			before := a.store.lookups.Load()
			for range 3 {
				if got := a.status(secret); got != http.StatusNotFound {
					t.Fatalf("unknown token: %d, want 404", got)
				}
			}
			if n := a.store.lookups.Load() - before; n != 1 {
				t.Fatalf("three refusals of one unknown token made %d store lookups, want 1", n)
			}

			if err := stB.CreateToken(ctx, tok, 0); err != nil {
				t.Fatal(err)
			}
			// Polling with the token would spend the address's budget of
			// failed authentications while the change is on its way.
			took := waitWithin(t, 10*time.Second, "A to apply the token's creation", func() bool { return a.applied.count(tok.ID) == 1 })
			if got := a.status(secret); got != http.StatusOK {
				t.Fatalf("the token created on B, once A applied its creation: %d, want 200", got)
			}
			t.Logf("%s: a token created on B, cached as unknown on A, was accepted by A %s later", s.name, took)

			rot, rotated, err := keygate.NewTokenSecret(a.api.Tokens, tok, keygate.GraceNone, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got := a.status(rotated); got != http.StatusNotFound {
				t.Fatalf("the new secret before the rotation: %d, want 404", got)
			}
			if _, err := stB.RotateToken(ctx, rot); err != nil {
				t.Fatal(err)
			}
			took = waitWithin(t, 10*time.Second, "A to apply the rotation", func() bool { return a.applied.count(tok.ID) == 2 })
			if got := a.status(rotated); got != http.StatusOK {
				t.Fatalf("the secret rotated on B, once A applied the rotation: %d, want 200", got)
			}
			t.Logf("%s: a secret rotated on B, cached as unknown on A, was accepted by A %s later", s.name, took)
		})
	}
}

// A token created on the same instance, through the dashboard or the
// management API, works at once: they tell the cache before answering.
func TestLocalCreateClearsNegativeEntriesAtOnce(t *testing.T) {
	f := newFixture(t)
	tok, secret, err := keygate.NewToken(f.menus.Tokens, keygate.TokenRequest{
		OrganizationID: f.org.ID, API: f.menus.Name, Name: "new", Scopes: []string{"products:read"}, Expiry: keygate.Expiry90Days,
	}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string][]string{"X-Token": {secret}}
	expect(t, "before it exists", serve(f.menusGW, "GET", "/v2/products", h), 404, cmNotFound)
	if f.tokens.UnknownLen() != 1 {
		t.Fatalf("%d hashes cached as unknown, want 1", f.tokens.UnknownLen())
	}
	if err := f.store.CreateToken(context.Background(), tok, 0); err != nil {
		t.Fatal(err)
	}
	f.tokens.Apply(keygate.Change{Kind: keygate.ChangeTokenCreated, ID: tok.ID}) // what the dashboard's notify does
	if got := serve(f.menusGW, "GET", "/v2/products", h); got.status != 200 {
		t.Fatalf("right after the create: %d %s", got.status, got.body)
	}
}

// An unknown token is refused from the cache on the same path as a
// deleted one: after the first lookup of each, neither reaches the store;
// both answer the preset's invalid-token refusal, counted against the
// address's failed-authentication budget alike, and 429 alike once it is
// spent.
func TestUnknownAndDeletedTokensAreRefusedAlikeFromTheCache(t *testing.T) {
	f := newFixture(t)
	deleted, deletedSecret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	if err := f.store.RevokeToken(context.Background(), deleted.ID, f.now); err != nil {
		t.Fatal(err)
	}
	f.waitApplied(deleted.ID, 2) // its creation and its deletion
	unknown := keygate.GenerateTokenSecret("cm_live_")
	for _, secret := range []string{deletedSecret, unknown} {
		serveFrom(f.menusGW, "198.51.100.30:1", "GET", "/v2/products", map[string][]string{"X-Token": {secret}})
	}
	lookups := f.store.lookups.Load()
	remaining := 58 // of cannmenus's 60 failures a minute, after the two above
	for range 10 {
		for _, c := range []struct{ name, secret string }{{"deleted", deletedSecret}, {"unknown", unknown}} {
			got := serveFrom(f.menusGW, "198.51.100.30:1", "GET", "/v2/products", map[string][]string{"X-Token": {c.secret}})
			expect(t, c.name, got, 404, cmNotFound)
			remaining--
			if r := rateHeader(got, "X-RateLimit-Remaining"); r != strconv.Itoa(remaining) {
				t.Errorf("%s: X-RateLimit-Remaining %q, want %d", c.name, r, remaining)
			}
		}
	}
	for range remaining {
		serveFrom(f.menusGW, "198.51.100.30:1", "GET", "/v2/products", map[string][]string{"X-Token": {unknown}})
	}
	// The budget spent, both are refused 429 alike.
	for name, secret := range map[string]string{"deleted": deletedSecret, "unknown": unknown} {
		got := serveFrom(f.menusGW, "198.51.100.30:1", "GET", "/v2/products", map[string][]string{"X-Token": {secret}})
		expect(t, name+" once the budget is spent", got, 429, `{"detail": "Too Many Requests"}`)
		if got.header.Get("Retry-After") == "" || rateHeader(got, "X-RateLimit-Remaining") != "0" {
			t.Errorf("%s: Retry-After %q remaining %q", name, got.header.Get("Retry-After"), rateHeader(got, "X-RateLimit-Remaining"))
		}
	}
	if n := f.store.lookups.Load() - lookups; n != 0 {
		t.Errorf("cached refusals made %d store lookups, want 0", n)
	}
}

// Negative entries expire after NegativeTTL, and their number is bounded.
func TestNegativeEntriesExpireAndAreBounded(t *testing.T) {
	st, org := newStallingStore(t)
	now := time.Now()
	clock := func() time.Time { return now }
	tokens := gateway.NewTokens(st, gateway.TokensOptions{NegativeTTL: 5 * time.Second, MaxNegativeEntries: 100, Now: clock})
	ctx := context.Background()
	hash := keygate.DigestToken(keygate.GenerateTokenSecret("csk_"))
	for range 3 {
		if _, _, err := tokens.Lookup(ctx, hash); keygate.ErrorCode(err) != keygate.ETOKENINVALID {
			t.Fatalf("Lookup(unknown) = %v, want ETOKENINVALID", err)
		}
	}
	if n := st.lookups.Load(); n != 1 {
		t.Fatalf("%d store lookups within the negative TTL, want 1", n)
	}
	now = now.Add(5 * time.Second)
	tokens.Lookup(ctx, hash)
	if n := st.lookups.Load(); n != 2 {
		t.Fatalf("%d store lookups after the negative TTL, want 2", n)
	}
	for range 1000 {
		tokens.Lookup(ctx, keygate.DigestToken(keygate.GenerateTokenSecret("csk_")))
	}
	if n := tokens.UnknownLen(); n > 100 || n < 90 {
		t.Errorf("%d unknown hashes cached after 1000 guesses, want at most 100 and more than 90", n)
	}
	// A deleted token is refused from the cache for as long, no longer:
	// neither refusal outlives the other.
	tokens = gateway.NewTokens(st, gateway.TokensOptions{NegativeTTL: 5 * time.Second, Now: clock})
	deleted := createToken(t, st.Store, org) // its hash
	tok, err := st.FindTokenByHash(ctx, deleted.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, tok.ID, now); err != nil {
		t.Fatal(err)
	}
	before := st.lookups.Load()
	for range 3 {
		if tok, _, err := tokens.Lookup(ctx, deleted); err != nil || tok.RevokedAt == nil {
			t.Fatalf("Lookup(deleted) = %+v, %v", tok, err)
		}
	}
	if n := st.lookups.Load() - before; n != 1 {
		t.Fatalf("%d store lookups of a deleted token within the negative TTL, want 1", n)
	}
	now = now.Add(5 * time.Second)
	tokens.Lookup(ctx, deleted)
	if n := st.lookups.Load() - before; n != 2 {
		t.Fatalf("%d store lookups of a deleted token after the negative TTL, want 2", n)
	}

	disabled := gateway.NewTokens(st, gateway.TokensOptions{NegativeTTL: -1})
	disabled.Lookup(ctx, hash)
	if disabled.UnknownLen() != 0 {
		t.Error("a negative NegativeTTL still cached an unknown token")
	}
}

// A token's creation can reach an instance after that instance already
// read and cached the token (the feed lags; the client was quick). The
// late change clears hashes cached as unknown but keeps the token's own
// entry, which is fresh: dropping it would leave the token without
// stale_if_error cover if the database went away next.
func TestLateCreationChangeKeepsTheTokensOwnEntry(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	if got := serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {secret}}); got.status != 200 {
		t.Fatalf("the new token: %d %s", got.status, got.body)
	}
	_, unknown, err := keygate.NewToken(f.menus.Tokens, keygate.TokenRequest{
		OrganizationID: f.org.ID, API: f.menus.Name, Name: "never stored", Scopes: []string{"products:read"}, Expiry: keygate.Expiry90Days,
	}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "an unknown token", serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {unknown}}), 404, cmNotFound)
	cached, unknowns := f.tokens.Len(), f.tokens.UnknownLen()
	if unknowns != 1 || cached == 0 {
		t.Fatalf("before the change: %d cached, %d unknown; want the token cached and 1 unknown", cached, unknowns)
	}
	f.tokens.Apply(keygate.Change{Kind: keygate.ChangeTokenCreated, ID: tok.ID})
	if f.tokens.Len() != cached || f.tokens.UnknownLen() != 0 {
		t.Errorf("after its late creation change: %d cached (want %d), %d unknown (want 0)", f.tokens.Len(), cached, f.tokens.UnknownLen())
	}
	f.tokens.Apply(keygate.Change{Kind: keygate.ChangeToken, ID: tok.ID})
	if f.tokens.Len() != cached-1 {
		t.Errorf("after a rotation or revocation change: %d cached, want %d", f.tokens.Len(), cached-1)
	}
}

// A full negative cache frees a whole tenth when it makes room, even when
// expiry frees only one entry: a steady flood of fresh unknown tokens
// (one entry expiring per guess) must not make every guess scan the whole
// cache under its lock.
func TestFullNegativeCacheFreesATenthAtOnce(t *testing.T) {
	st, _ := newStallingStore(t)
	now := time.Now()
	clock := func() time.Time { return now }
	const size, ttl = 100, 100 * time.Millisecond
	tokens := gateway.NewTokens(st, gateway.TokensOptions{NegativeTTL: ttl, MaxNegativeEntries: size, Now: clock})
	ctx := context.Background()
	guess := func() {
		now = now.Add(ttl / size) // the oldest entry expires as each guess comes
		tokens.Lookup(ctx, keygate.DigestToken(keygate.GenerateTokenSecret("csk_")))
	}
	for range size {
		guess()
	}
	if n := tokens.UnknownLen(); n != size {
		t.Fatalf("%d unknown hashes after %d guesses, want %d", n, size, size)
	}
	guess()
	if n := tokens.UnknownLen(); n > size-size/10+1 {
		t.Errorf("%d unknown hashes after the cache made room, want at most %d: room was made one entry at a time", n, size-size/10+1)
	}
}
