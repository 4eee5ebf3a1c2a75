package gateway

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/preset"
)

func testSigner(tb testing.TB) *identity.Signer {
	tb.Helper()
	k, err := identity.NewSigningKey()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := identity.NewSigner(k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// tokensOf returns n tokens of one organization shaped as the store
// hands them out: ids as keygate makes them, scopes, entitlements.
func tokensOf(n int) ([]*keygate.Token, *keygate.Organization) {
	org := &keygate.Organization{ID: keygate.NewID("org"), Slug: "green-leaf-dispensaries", Plan: "pro",
		Entitlements: keygate.Entitlements{States: []string{"California", "Colorado", "Michigan"}}}
	toks := make([]*keygate.Token, n)
	for i := range toks {
		toks[i] = &keygate.Token{ID: keygate.NewID("tok"), OrganizationID: org.ID, API: "cannmenus",
			Scopes: []string{"products:read", "analytics:read"}}
	}
	return toks, org
}

// countSigns makes c count the identities it signs.
func countSigns(c *identities) *atomic.Int64 {
	var n atomic.Int64
	sign := c.sign
	c.sign = func(id *keygate.Identity) (string, time.Time, error) {
		n.Add(1)
		return sign(id)
	}
	return &n
}

// A full cache makes room by dropping an eighth, not everything: warm
// entries mostly stay, and the cache never holds more than its bound nor
// drops more than an eighth of it at once.
func TestIdentitiesKeepMostWarmEntriesWhenFull(t *testing.T) {
	const bound = 2000
	c := newIdentities("cannmenus", testSigner(t), newIdentityBudget(bound))
	c.now = stoppedClock()
	toks, org := tokensOf(2 * bound)
	warm := make(map[*keygate.Token]*signedIdentity, bound)
	for _, tok := range toks[:bound] {
		warm[tok] = c.of(tok, org)
	}
	for _, tok := range toks[bound : bound+bound/8] {
		c.of(tok, org)
		if n := len(c.byKey); n > bound {
			t.Fatalf("%d entries, bound %d", n, bound)
		}
	}
	kept := 0
	for tok, e := range warm {
		if c.byKey[identityKey{tok, org}] == e {
			kept++
		}
	}
	if kept < bound*3/4 {
		t.Errorf("%d of %d warm entries kept after %d more tokens", kept, bound, bound/8)
	}
	for _, tok := range toks[bound+bound/8:] {
		c.of(tok, org)
		if n := len(c.byKey); n > bound || n < bound-bound/8 {
			t.Fatalf("%d entries, want %d to %d", n, bound-bound/8, bound)
		}
	}
}

// stoppedClock keeps every entry within its reuse time, however long a
// test takes.
func stoppedClock() func() time.Time {
	now := time.Now()
	return func() time.Time { return now }
}

// More active tokens than the old fixed bound (10,000), used in turn:
// each is signed once, not on every request; and with more tokens than
// the cache holds, only the ones it made room by dropping are signed
// again, not all of them each time it fills.
func TestIdentitiesSignOncePerTokenBeyondTenThousand(t *testing.T) {
	signer := testSigner(t)
	toks, org := tokensOf(12_000)
	const rounds = 3
	for _, tc := range []struct {
		name      string
		bound     int
		maxSigned int
	}{
		// The bound a gateway gets with the default cache.max_entries.
		{"default bound", maxIdentitiesFor(nil), len(toks)},
		// Tokens a fifth over the bound: every round but the first signs
		// roughly those dropped to make room, never all of them.
		{"tokens over the bound", 10_000, len(toks) + (rounds-1)*len(toks)/2},
	} {
		c := newIdentities("cannmenus", signer, newIdentityBudget(tc.bound))
		c.now = stoppedClock()
		signs := countSigns(c)
		for range rounds {
			for _, tok := range toks {
				if e := c.of(tok, org); e.values[3] == "" {
					t.Fatalf("%s: no JWT", tc.name)
				}
			}
		}
		requests := rounds * len(toks)
		if got := signs.Load(); got > int64(tc.maxSigned) {
			t.Errorf("%s (bound %d): %d signatures for %d requests of %d tokens, want at most %d",
				tc.name, tc.bound, got, requests, len(toks), tc.maxSigned)
		} else {
			t.Logf("%s (bound %d): %d signatures for %d requests", tc.name, tc.bound, got, requests)
		}
		if n := len(c.byKey); n > tc.bound {
			t.Errorf("%s: %d entries, bound %d", tc.name, n, tc.bound)
		}
	}
}

// The gateways of two APIs sharing a token cache keep no more signed
// identities together than its one budget, a fifth of its max_entries,
// however the tokens come. The API whose tokens come once the other's
// fill the budget still keeps its own (each of its tokens signed once),
// room being made in both: it does not sign every request while the
// other holds the budget.
func TestGatewaysSharingATokenCacheKeepOneBudgetOfIdentities(t *testing.T) {
	tokens := NewTokens(nil, TokensOptions{MaxEntries: 5_000})
	budget := maxIdentitiesFor(tokens)
	signer := testSigner(t)
	menus, events := gatewayFor(t, "cannmenus", tokens, signer), gatewayFor(t, "canskan", tokens, signer)
	held := func() int {
		t.Helper()
		n := len(menus.identities.byKey) + len(events.identities.byKey)
		if used := tokens.identities.used.Load(); used != int64(n) {
			t.Fatalf("the budget counts %d entries, the gateways hold %d", used, n)
		}
		return n
	}

	menusToks, org := tokensOf(2 * budget)
	for _, tok := range menusToks {
		menus.identities.of(tok, org)
		if n := held(); n > budget {
			t.Fatalf("%d identities kept, budget %d", n, budget)
		}
	}
	eventsToks, _ := tokensOf(budget)
	signs := countSigns(events.identities)
	for _, tok := range eventsToks {
		// Asked twice in a row: the second is the entry kept.
		events.identities.of(tok, org)
		events.identities.of(tok, org)
		if n := held(); n > budget {
			t.Fatalf("%d identities kept, budget %d", n, budget)
		}
	}
	if got := signs.Load(); got != int64(len(eventsToks)) {
		t.Errorf("canskan signed %d times for %d tokens asked twice each, want once per token", got, len(eventsToks))
	}
	if len(menus.identities.byKey) == 0 || len(events.identities.byKey) == 0 {
		t.Errorf("cannmenus keeps %d, canskan %d: want both to keep some", len(menus.identities.byKey), len(events.identities.byKey))
	}
	t.Logf("budget %d: cannmenus keeps %d, canskan %d", budget, len(menus.identities.byKey), len(events.identities.byKey))
}

// The budget holds while the gateways of two APIs add entries at once.
func TestGatewaysSharingATokenCacheKeepTheBudgetConcurrently(t *testing.T) {
	tokens := NewTokens(nil, TokensOptions{MaxEntries: 1_000})
	budget := maxIdentitiesFor(tokens)
	gws := []*Gateway{gatewayFor(t, "cannmenus", tokens, nil), gatewayFor(t, "canskan", tokens, nil)}
	var wg sync.WaitGroup
	for _, g := range gws {
		for range 4 {
			toks, org := tokensOf(2 * budget)
			wg.Go(func() {
				for _, tok := range toks {
					g.identities.of(tok, org)
				}
			})
		}
	}
	wg.Wait()
	n := len(gws[0].identities.byKey) + len(gws[1].identities.byKey)
	if used := tokens.identities.used.Load(); used != int64(n) || n > budget {
		t.Errorf("the gateways hold %d identities, the budget counts %d; budget %d", n, used, budget)
	}
}

// A token whose identity is kept gets it without allocating.
func TestAKeptIdentityCostsNoAllocation(t *testing.T) {
	g := gatewayFor(t, "cannmenus", NewTokens(nil, TokensOptions{}), testSigner(t))
	toks, org := tokensOf(1)
	first := g.identities.of(toks[0], org)
	if allocs := testing.AllocsPerRun(1000, func() {
		if g.identities.of(toks[0], org) != first {
			t.Fatal("the kept identity was not reused")
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per kept identity, want 0", allocs)
	}
}

// gatewayFor is the gateway of an API named name over tokens, its
// identities' clock stopped (see stoppedClock).
func gatewayFor(t *testing.T, name string, tokens *Tokens, signer *identity.Signer) *Gateway {
	t.Helper()
	g, err := New(Config{API: &keygate.API{Name: name, Preset: preset.CannMenus(), Upstream: "http://127.0.0.1:9"}, Tokens: tokens, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	g.identities.now = stoppedClock()
	return g
}

// BenchmarkIdentityBytesPerEntry fills a gateway's identities to the
// bound it gets with the default cache.max_entries and reports the heap
// each entry costs: the map's slot, the entry, its identity and header
// values (the scopes joined, the JWT, the rate limit bucket names). The
// tokens and organization are the token cache's and not counted, nor is
// the signer's own reuse cache (bounded apart, dropped before measuring).
func BenchmarkIdentityBytesPerEntry(b *testing.B) {
	n := maxIdentitiesFor(nil)
	toks, org := tokensOf(n)
	var perEntry, jwtBytes float64
	for b.Loop() {
		before := heapInUse()
		c := newIdentities("cannmenus", testSigner(b), newIdentityBudget(n))
		for _, tok := range toks {
			jwtBytes = float64(len(c.of(tok, org).values[3]))
		}
		c.signer, c.sign = nil, nil
		perEntry = float64(heapInUse()-before) / float64(n)
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "bytes/entry")
	b.ReportMetric(jwtBytes, "jwt-bytes")
}

func heapInUse() uint64 {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.HeapAlloc
}
