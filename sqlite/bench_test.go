package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/storetest"
)

// benchStore returns a store holding one organization and n tokens, and
// the tokens' hashes.
func benchStore(b *testing.B, n int) (*sqlite.Store, *keygate.Organization, []string) {
	b.Helper()
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "keygate.db"))
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(ctx, org); err != nil {
		b.Fatal(err)
	}
	hashes := make([]string, n)
	for i := range n {
		tok := storetest.BenchToken(org.ID, i)
		if err := s.CreateToken(ctx, tok, 0); err != nil {
			b.Fatal(err)
		}
		hashes[i] = tok.Hash
	}
	return s, org, hashes
}

// BenchmarkFindTokenByHash is the gateway's lookup on a cache miss.
func BenchmarkFindTokenByHash(b *testing.B) {
	s, _, hashes := benchStore(b, 10_000)
	storetest.BenchFindTokenByHash(b, s, hashes)
}

// BenchmarkCreateToken stores tokens with the active-token limit checked,
// among 1,000 tokens of the same organization and API.
func BenchmarkCreateToken(b *testing.B) {
	s, org, _ := benchStore(b, 1_000)
	storetest.BenchCreateToken(b, s, org.ID)
}
