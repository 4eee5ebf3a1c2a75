package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// TestReplicaReads runs token lookups against a real streaming replica: it
// answers what it has replayed, and the primary answers whatever the
// replica could get wrong: a token created a moment ago, and a revocation
// the replica has not replayed, whether this store made it or its change
// feed brought it from another process.
func TestReplicaReads(t *testing.T) {
	pgtest.URL(t) // the same skip-or-fail rule as every PostgreSQL suite
	cluster := pgtest.StartReplicated(t)
	ctx := context.Background()
	store := openWith(t, cluster.PrimaryURL, postgres.WithReplicas(cluster.ReplicaURL))
	other := openWith(t, cluster.PrimaryURL) // the CLI, or another instance without replicas
	fd := watch(t, store)
	f := newFixture(t, store)
	f.ready(fd)

	seenEarlier, byOther, revokedHere := f.token(), f.token(), f.token()
	cluster.WaitCaughtUp()

	find := func(tok *keygate.Token) *keygate.Token {
		t.Helper()
		got, err := store.FindTokenByHash(ctx, tok.Hash)
		if err != nil {
			t.Fatalf("FindTokenByHash(%s): %v", tok.ID, err)
		}
		return got
	}
	hits := func() int64 { h, _ := store.ReplicaReads(); return h }

	before := hits()
	if got := find(seenEarlier); got.ID != seenEarlier.ID || got.RevokedAt != nil {
		t.Fatalf("replica answered %+v", got)
	}
	if hits() != before+1 {
		t.Fatalf("a caught-up replica did not answer the lookup (hits %d → %d)", before, hits())
	}

	cluster.PauseReplay()

	fresh := f.token()
	if got := find(fresh); got.ID != fresh.ID {
		t.Fatalf("a token created while the replica lags: got %+v", got)
	}

	f.revoke(store, revokedHere.ID)
	fd.expect(revokedHere.ID, 5*time.Second)
	if got := find(revokedHere); got.RevokedAt == nil {
		t.Fatal("a token revoked through this store was found active on the lagging replica")
	}

	f.revoke(other, byOther.ID)
	fd.expect(byOther.ID, 5*time.Second)
	if got := find(byOther); got.RevokedAt == nil {
		t.Fatal("a revocation delivered by the change feed was undone by the lagging replica")
	}

	before = hits()
	find(seenEarlier)
	if hits() != before {
		t.Fatal("a replica behind a change this store has seen still answered")
	}

	// An instance starting now has seen nothing yet, but must not take the
	// lagging replica's word for what was revoked before it started.
	late := openWith(t, cluster.PrimaryURL, postgres.WithReplicas(cluster.ReplicaURL))
	if got, err := late.FindTokenByHash(ctx, byOther.Hash); err != nil || got.RevokedAt == nil {
		t.Fatalf("an instance started while the replica lags found %+v, %v: the revocation was undone", got, err)
	}

	cluster.ResumeReplay()
	cluster.WaitCaughtUp()
	before = hits()
	if got := find(revokedHere); got.RevokedAt == nil {
		t.Fatal("the caught-up replica lost the revocation")
	}
	if hits() != before+1 {
		t.Fatal("a replica that caught up did not answer again")
	}

	cluster.StopReplica()
	start := time.Now()
	for range 3 {
		if got := find(seenEarlier); got.ID != seenEarlier.ID {
			t.Fatalf("with the replica down: %+v", got)
		}
	}
	t.Logf("three lookups with the replica down took %s (the first finds it down, the rest skip it)", time.Since(start))
	_, fallbacks := store.ReplicaReads()
	t.Logf("replica hits %d, primary fallbacks %d", hits(), fallbacks)
}
