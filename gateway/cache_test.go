package gateway_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/storetest"
)

func TestTokenCacheCountsHitsAndMisses(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	hits0, misses0, _ := f.tokens.CacheStats()
	for i := range 5 {
		if got := serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {secret}}); got.status != 200 {
			t.Fatalf("request %d: %d %s", i, got.status, got.body)
		}
	}
	hits, misses, entries := f.tokens.CacheStats()
	hits, misses = hits-hits0, misses-misses0
	// The first lookup reads the store; the token's creation reaching the
	// change feed late may cost one more.
	if hits+misses != 5 || misses < 1 || misses > 2 || entries < 1 {
		t.Fatalf("5 requests with one token: %d hits, %d misses, %d entries; want 5 lookups, 1 or 2 misses", hits, misses, entries)
	}
}

// mapStore is a TokenStore held in a map: the benchmarks below measure the
// cache, not a database.
type mapStore struct {
	tokens map[string]*keygate.Token
	org    *keygate.Organization
}

func (s *mapStore) FindTokenByHash(_ context.Context, hash string) (*keygate.Token, error) {
	if tok, ok := s.tokens[hash]; ok {
		return tok, nil
	}
	return nil, keygate.Errorf(keygate.ENOTFOUND, "no such token")
}

func (s *mapStore) FindOrganizationByID(context.Context, string) (*keygate.Organization, error) {
	return s.org, nil
}

func newMapStore(n int) (*mapStore, []keygate.TokenDigest) {
	s := &mapStore{tokens: make(map[string]*keygate.Token, n), org: &keygate.Organization{ID: "org_bench", Slug: "bench", Plan: "free"}}
	digests := make([]keygate.TokenDigest, n)
	for i := range n {
		tok := storetest.BenchToken(s.org.ID, i)
		s.tokens[tok.Hash] = tok
		digests[i] = digestOf(tok.Hash)
	}
	return s, digests
}

// digestOf is the digest whose hex is hash.
func digestOf(hash string) keygate.TokenDigest {
	var d keygate.TokenDigest
	if n, err := hex.Decode(d[:], []byte(hash)); err != nil || n != len(d) {
		panic("not a token hash: " + hash)
	}
	return d
}

// BenchmarkTokenCacheBytesPerEntry fills a cache with 100,000 tokens (the
// default cache.max_entries) and reports the heap each entry costs: the
// cache's maps and the token as the store returned it.
func BenchmarkTokenCacheBytesPerEntry(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	var perEntry float64
	for b.Loop() {
		store, hashes := newMapStore(n)
		before := liveHeap()
		cache := gateway.NewTokens(store, gateway.TokensOptions{MaxEntries: n})
		for _, h := range hashes {
			if _, _, err := cache.Lookup(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
		// The tokens themselves were allocated by the store before; count
		// them too, since a real store hands each lookup a fresh copy.
		perEntry = float64(liveHeap()-before)/n + float64(tokenBytes(store, hashes))/n
		runtime.KeepAlive(cache)
	}
	b.ReportMetric(perEntry, "bytes/entry")
}

// BenchmarkTokenCacheHit is a cached token's lookup with the cache holding
// 1,000 and 100,000 tokens: the cost must not grow with the cache.
func BenchmarkTokenCacheHit(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			ctx := context.Background()
			store, hashes := newMapStore(n)
			cache := gateway.NewTokens(store, gateway.TokensOptions{MaxEntries: n})
			for _, h := range hashes {
				cache.Lookup(ctx, h)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := cache.Lookup(ctx, hashes[i%n]); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.HeapAlloc
}

// tokenBytes estimates one stored token's heap: its struct and strings.
func tokenBytes(s *mapStore, digests []keygate.TokenDigest) uint64 {
	before := liveHeap()
	copies := make([]*keygate.Token, len(digests))
	for i, d := range digests {
		tok := *s.tokens[d.String()]
		tok.ID, tok.Hash, tok.Name, tok.Hint = clone(tok.ID), clone(tok.Hash), clone(tok.Name), clone(tok.Hint)
		tok.Scopes = append([]string(nil), tok.Scopes...)
		copies[i] = &tok
	}
	used := liveHeap() - before
	runtime.KeepAlive(copies)
	return used
}

func clone(s string) string { return string(append([]byte(nil), s...)) }
