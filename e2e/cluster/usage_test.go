package cluster_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres/pgtest"
)

// Three instances serving one token: last-used times and usage counters are
// written in batches (one write per token per minute per instance, not one
// per request), and no instance's batch overwrites another's.
func TestLastUsedIsBatchedAcrossInstances(t *testing.T) {
	c := newCluster(t)
	c.start(3, settings{ttl: "30s", staleIfError: "5m", flushInterval: "200ms"}, "")
	// Count the statements that write the tokens table from now on.
	pgtest.Exec(t, c.db, `CREATE TABLE token_writes (at timestamptz NOT NULL DEFAULT now())`)
	pgtest.Exec(t, c.db, `CREATE FUNCTION count_token_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO token_writes DEFAULT VALUES; RETURN NULL; END $$`)
	pgtest.Exec(t, c.db, `CREATE TRIGGER count_token_writes AFTER UPDATE ON tokens
		FOR EACH STATEMENT EXECUTE FUNCTION count_token_write()`)

	tok, secret := c.token(c.instances[0])
	firstMinute := time.Now().UTC().Truncate(time.Minute)
	const perInstance = 100
	var wg sync.WaitGroup
	for _, in := range c.instances {
		wg.Go(func() {
			for i := range perInstance {
				if a := in.get("/api/v1/organization", secret); a.status != http.StatusOK {
					t.Errorf("%s request %d: %d %s", in.name, i, a.status, a.body)
					return
				}
				if i%20 == 0 {
					time.Sleep(50 * time.Millisecond) // spread over several flushes
				}
			}
		})
	}
	wg.Wait()
	lastMinute := time.Now().UTC().Truncate(time.Minute)
	time.Sleep(time.Second) // several flush intervals: every instance has written

	ctx := context.Background()
	store := c.instances[0].server.Store()
	got, err := store.FindTokenByID(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsedAt == nil || got.LastUsedAt.Before(firstMinute) || got.LastUsedAt.After(lastMinute) {
		t.Errorf("LastUsedAt = %v, want the minute of the last request (%s to %s)", got.LastUsedAt, firstMinute, lastMinute)
	}
	usage, err := store.ListUsage(ctx, keygate.UsageQuery{OrganizationID: tok.OrganizationID, TokenID: tok.ID,
		From: firstMinute.Truncate(time.Hour), To: lastMinute.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, u := range usage {
		counted += u.Requests
	}
	writes := countRows(t, c, `SELECT COUNT(*) FROM token_writes`)
	// An instance writes a token's minute once, however many requests
	// (requests during an in-flight write do not queue it again).
	maxWrites := 3 * (int(lastMinute.Sub(firstMinute)/time.Minute) + 1)
	t.Logf("%d requests over 3 instances: usage counted %d; %d writes to the tokens table (at most %d allowed)",
		3*perInstance, counted, writes, maxWrites)
	if counted != 3*perInstance {
		t.Errorf("usage counted %d requests, want %d: an instance's batch was lost", counted, 3*perInstance)
	}
	if writes == 0 || writes > maxWrites {
		t.Errorf("%d writes to the tokens table for %d requests, want 1 to %d", writes, 3*perInstance, maxWrites)
	}
}

func countRows(t *testing.T, c *cluster, sql string) int {
	t.Helper()
	conn := pgtest.Conn(t, c.db)
	var n int
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
