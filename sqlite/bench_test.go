package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
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
		tok := benchToken(org.ID, i)
		if err := s.CreateToken(ctx, tok, 0); err != nil {
			b.Fatal(err)
		}
		hashes[i] = tok.Hash
	}
	return s, org, hashes
}

func benchToken(orgID string, i int) *keygate.Token {
	id := keygate.NewID("tok")
	expires := time.Now().Add(90 * 24 * time.Hour)
	return &keygate.Token{
		ID: id, OrganizationID: orgID, API: "cannmenus", Name: fmt.Sprintf("token %d", i),
		Scopes: []string{"products:read"}, Environment: keygate.EnvironmentLive,
		Hash: keygate.HashToken(id), Hint: "cm_live_…" + id[len(id)-4:],
		CreatedBy: "usr_bench", ExpiresAt: &expires,
	}
}

// BenchmarkFindTokenByHash is the gateway's lookup on a cache miss.
func BenchmarkFindTokenByHash(b *testing.B) {
	s, _, hashes := benchStore(b, 10_000)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.FindTokenByHash(ctx, hashes[i%len(hashes)]); err != nil {
				b.Fatal(err)
			}
			i += 7919 // a prime stride, so goroutines spread over the table
		}
	})
}

// BenchmarkCreateToken stores tokens with the active-token limit checked,
// among 1,000 tokens of the same organization and API.
func BenchmarkCreateToken(b *testing.B) {
	s, org, _ := benchStore(b, 1_000)
	ctx := context.Background()
	limit := 1 << 30 // checked on every create, never reached
	i := 0
	for b.Loop() {
		if err := s.CreateToken(ctx, benchToken(org.ID, i), limit); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
