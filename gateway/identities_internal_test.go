package gateway

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/identity"
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
	c := newIdentities("cannmenus", testSigner(t), bound)
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
		c := newIdentities("cannmenus", signer, tc.bound)
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
		c := newIdentities("cannmenus", testSigner(b), n)
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
