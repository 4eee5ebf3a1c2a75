package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/storetest"
)

// benchStore returns a store holding one organization and n tokens, and
// the tokens' hashes. The tokens are inserted with one statement: the
// benchmark runs this again for every b.N it tries.
func benchStore(b *testing.B, n int) (*postgres.Store, *keygate.Organization, []string) {
	b.Helper()
	ctx := context.Background()
	url := pgtest.NewSchema(b)
	s := open(b, url)
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(ctx, org); err != nil {
		b.Fatal(err)
	}
	ids, hashes := make([]string, n), make([]string, n)
	for i := range n {
		ids[i] = keygate.NewID("tok")
		hashes[i] = keygate.HashToken(ids[i])
	}
	_, err := pgtest.Conn(b, url).Exec(ctx, `INSERT INTO tokens (id, organization_id, api, name, scopes,
			environment, hash, hint, created_at, created_by, expires_at)
		SELECT id, $3, 'cannmenus', 'token', '{products:read}', 'live', hash, 'cm_live_…' || right(id, 4),
			now(), 'usr_bench', now() + interval '90 days'
		FROM unnest($1::text[], $2::text[]) AS t (id, hash)`, ids, hashes, org.ID)
	if err != nil {
		b.Fatal(err)
	}
	return s, org, hashes
}

// BenchmarkFindTokenByHash is the gateway's lookup on a cache miss, from
// several goroutines at once, as a busy instance makes it.
func BenchmarkFindTokenByHash(b *testing.B) {
	s, _, hashes := benchStore(b, 10_000)
	storetest.BenchFindTokenByHash(b, s, hashes)
}

// BenchmarkFindTokenByHashSequential is one lookup at a time: the latency
// a single cache miss adds to its request.
func BenchmarkFindTokenByHashSequential(b *testing.B) {
	s, _, hashes := benchStore(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.FindTokenByHash(ctx, hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

// BenchmarkCreateToken stores tokens with the active-token limit checked
// under the organization's row lock, among 1,000 tokens of the same
// organization and API.
func BenchmarkCreateToken(b *testing.B) {
	s, org, _ := benchStore(b, 1_000)
	storetest.BenchCreateToken(b, s, org.ID)
}

// BenchmarkRevocationToWatcher is how long a revocation through one handle
// takes to reach another handle's WatchChanges: commit, NOTIFY, read of
// the changes table.
func BenchmarkRevocationToWatcher(b *testing.B) {
	url := pgtest.NewSchema(b)
	s, other := open(b, url), open(b, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan string, 16)
	go s.WatchChanges(ctx, nil, func(c keygate.Change) { seen <- c.ID })
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := other.CreateOrganization(ctx, org); err != nil {
		b.Fatal(err)
	}
	// Wait until the watcher listens: a revocation arrives.
	for ready := false; !ready; {
		tok := storetest.BenchToken(org.ID, 0)
		if err := other.CreateToken(ctx, tok, 0); err != nil {
			b.Fatal(err)
		}
		other.RevokeToken(ctx, tok.ID, time.Now())
		select {
		case <-seen:
			ready = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	for len(seen) > 0 {
		<-seen
	}
	tokens := make([]*keygate.Token, 0, 1000)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		b.StopTimer()
		if i == len(tokens) {
			tok := storetest.BenchToken(org.ID, i)
			if err := other.CreateToken(ctx, tok, 0); err != nil {
				b.Fatal(err)
			}
			tokens = append(tokens, tok)
		}
		tok := tokens[i]
		i++
		b.StartTimer()
		if err := other.RevokeToken(ctx, tok.ID, time.Now()); err != nil {
			b.Fatal(err)
		}
		for id := <-seen; id != tok.ID; id = <-seen {
		}
	}
}

// BenchmarkTouchTokens writes one flush of last-used times: 1,000 tokens
// in one transaction. ns/op is per flush; divide by 1,000 for per token.
func BenchmarkTouchTokens(b *testing.B) {
	s, _, _ := benchStore(b, 10_000)
	ctx := context.Background()
	var ids []string
	for _, tok := range mustList(b, s) {
		ids = append(ids, tok.ID)
		if len(ids) == 1000 {
			break
		}
	}
	minute := time.Now().UTC().Truncate(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		minute = minute.Add(time.Minute) // every row moves forward: a real write
		batch := make(map[string]time.Time, len(ids))
		for _, id := range ids {
			batch[id] = minute
		}
		if err := s.TouchTokens(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordUsage writes one flush of usage counters: 1,000 (token,
// hour) rows added to what is stored, in one transaction.
func BenchmarkRecordUsage(b *testing.B) {
	s, org, _ := benchStore(b, 0)
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	counts := make([]keygate.UsageCount, 1000)
	for i := range counts {
		counts[i] = keygate.UsageCount{OrganizationID: org.ID, TokenID: fmt.Sprintf("tok_%04d", i), Hour: hour, Requests: 10, Errors: 1}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.RecordUsage(ctx, "", counts); err != nil {
			b.Fatal(err)
		}
	}
}

func mustList(b *testing.B, s *postgres.Store) []*keygate.Token {
	b.Helper()
	list, err := s.ListTokens(context.Background(), keygate.TokenFilter{})
	if err != nil {
		b.Fatal(err)
	}
	return list
}
