package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// BenchToken returns the i-th token of orgID for a benchmark: a realistic
// row whose hash is the hash of its id.
func BenchToken(orgID string, i int) *keygate.Token {
	id := keygate.NewID("tok")
	expires := time.Now().Add(90 * 24 * time.Hour)
	return &keygate.Token{
		ID: id, OrganizationID: orgID, API: "cannmenus", Name: fmt.Sprintf("token %d", i),
		Scopes: []string{"products:read"}, Environment: keygate.EnvironmentLive,
		Hash: keygate.HashToken(id), Hint: "cm_live_…" + id[len(id)-4:],
		CreatedBy: "usr_bench", ExpiresAt: &expires,
	}
}

// BenchFindTokenByHash measures the gateway's lookup on a cache miss, from
// several goroutines at once as a busy instance makes it, over hashes of
// stored tokens.
func BenchFindTokenByHash(b *testing.B, s keygate.TokenService, hashes []string) {
	ctx := context.Background()
	b.ReportAllocs()
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

// BenchCreateToken measures creating tokens of orgID with the active-token
// limit checked on every create (and never reached).
func BenchCreateToken(b *testing.B, s keygate.TokenService, orgID string) {
	ctx := context.Background()
	limit := 1 << 30
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := s.CreateToken(ctx, BenchToken(orgID, i), limit); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
