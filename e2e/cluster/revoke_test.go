package cluster_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/postgres/pgtest"
)

// maxRevocationDelay is the promise: a token deleted on one instance is
// refused by every other instance within this time.
const maxRevocationDelay = time.Second

// refusedAfter revokes the token through instance 1 (as a delete in its
// dashboard does) and returns, for each other instance, how long after the
// revocation committed it first refused the token. Each instance is polled
// continuously with the token, which it had cached.
func refusedAfter(t *testing.T, c *cluster, tokID, secret string, others []*instance) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(others))
	start := make(chan time.Time)
	var wg sync.WaitGroup
	for i, in := range others {
		wg.Go(func() {
			revokedAt := <-start
			deadline := revokedAt.Add(10 * time.Second)
			for time.Now().Before(deadline) {
				a := in.get("/api/v1/organization", secret)
				switch {
				case a.status == http.StatusUnauthorized && a.body == bodyInvalid:
					took[i] = time.Since(revokedAt)
					return
				case a.status != http.StatusOK:
					t.Errorf("%s answered %d %s while the token was being revoked", in.name, a.status, a.body)
					return
				}
				time.Sleep(time.Millisecond)
			}
			took[i] = -1
		})
	}
	if err := c.instances[0].server.Store().RevokeToken(context.Background(), tokID, time.Now()); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	now := time.Now()
	for range others {
		start <- now
	}
	wg.Wait()
	for i, d := range took {
		if d < 0 {
			t.Fatalf("%s still accepts the revoked token 10s later", others[i].name)
		}
	}
	return took
}

// Three instances on one database with the production cache TTL (30s): a
// token created through instance 1 works on 2 and 3; deleted through 1, it
// is refused by 2 and 3 within a second, over several rounds.
func TestRevocationReachesEveryInstance(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	first, others := c.instances[0], c.instances[1:]

	var all []time.Duration
	for round := range 5 {
		tok, secret := c.token(first)
		for _, in := range c.instances {
			in.mustAccept(t, secret)
		}
		took := refusedAfter(t, c, tok.ID, secret, others)
		t.Logf("round %d: revoked through %s; refused by %s after %s, by %s after %s",
			round, first.name, others[0].name, took[0], others[1].name, took[1])
		all = append(all, took...)
	}
	slices.Sort(all)
	t.Logf("revocation to refusal on other instances, %d measurements: median %s, max %s (ttl 30s)",
		len(all), all[len(all)/2], all[len(all)-1])
	if worst := all[len(all)-1]; worst >= maxRevocationDelay {
		t.Errorf("slowest instance refused a revoked token after %s, want under %s", worst, maxRevocationDelay)
	}
}

// pg_terminate_backend on the LISTEN connections of instances 2 and 3,
// then a revocation through instance 1 while they reconnect: both refuse
// the token (reading the database while their feeds are away, or from the
// feed once back), and invalidation keeps working afterwards.
func TestRevocationSurvivesTerminatedListeners(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	first, others := c.instances[0], c.instances[1:]

	for round := range 3 {
		tok, secret := c.token(first)
		for _, in := range c.instances {
			in.mustAccept(t, secret)
		}
		for _, in := range others {
			// Its feed listening, not between connections (a slow
			// machine can make a feed reconnect by itself).
			in.waitFollowing(t)
			if n := pgtest.Terminate(t, c.db, in.name+" (changes)"); n != 1 {
				t.Fatalf("round %d: terminated %d listening connections of %s, want 1", round, n, in.name)
			}
		}
		// Revoked at once: the listeners are down or reconnecting.
		took := refusedAfter(t, c, tok.ID, secret, others)
		t.Logf("round %d: listeners terminated, revoked meanwhile; refused by %s after %s, by %s after %s",
			round, others[0].name, took[0], others[1].name, took[1])
		for i, d := range took {
			if d >= maxRevocationDelay {
				t.Errorf("round %d: %s refused the token revoked during its reconnect after %s, want under %s",
					round, others[i].name, d, maxRevocationDelay)
			}
		}

		// Listening again, caught up: the next revocation arrives as
		// usual, through the feed.
		tok, secret = c.token(first)
		for _, in := range others {
			in.waitFollowing(t)
			in.mustAccept(t, secret)
		}
		took = refusedAfter(t, c, tok.ID, secret, others)
		for i, d := range took {
			if d >= maxRevocationDelay {
				t.Errorf("round %d: after reconnecting, %s refused a revoked token after %s", round, others[i].name, d)
			}
		}
	}
}

// Every connection of instance 2 terminated (as a database restart does)
// while it serves: cached tokens keep working, new tokens are looked up on
// fresh connections, and revocations still arrive.
func TestInstanceSurvivesTerminatedConnections(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	first, second := c.instances[0], c.instances[1]
	cached, cachedSecret := c.token(first)
	second.mustAccept(t, cachedSecret)

	n := pgtest.Terminate(t, c.db, second.name) + pgtest.Terminate(t, c.db, second.name+" (changes)")
	if n < 2 {
		t.Fatalf("terminated %d connections of %s, want its pool's and its listener's", n, second.name)
	}
	time.Sleep(50 * time.Millisecond) // the backends exit
	second.mustAccept(t, cachedSecret)
	_, fresh := c.token(first)
	second.mustAccept(t, fresh)

	took := refusedAfter(t, c, cached.ID, cachedSecret, []*instance{second})
	t.Logf("after every connection of %s was terminated, a revocation reached it in %s", second.name, took[0])
	if took[0] >= maxRevocationDelay {
		t.Errorf("revocation took %s, want under %s", took[0], maxRevocationDelay)
	}
}

// changeSeenAfter makes a change through instance 1 and returns how long
// after it committed each other instance first answered path with want.
func changeSeenAfter(t *testing.T, others []*instance, path, secret string, want answer, change func()) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(others))
	start := make(chan time.Time)
	var wg sync.WaitGroup
	for i, in := range others {
		wg.Go(func() {
			changedAt := <-start
			for time.Since(changedAt) < 10*time.Second {
				if a := in.get(path, secret); a == want {
					took[i] = time.Since(changedAt)
					return
				}
				time.Sleep(time.Millisecond)
			}
			took[i] = -1
		})
	}
	change()
	now := time.Now()
	for range others {
		start <- now
	}
	wg.Wait()
	for i, d := range took {
		if d < 0 {
			t.Fatalf("%s did not answer %d %s within 10s of the change", others[i].name, want.status, want.body)
		}
	}
	return took
}

// An organization's entitlements changed, then the organization deleted,
// through instance 1: instances 2 and 3 apply both within a second.
func TestOrganizationChangesReachEveryInstance(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	first, others := c.instances[0], c.instances[1:]
	ctx := context.Background()
	org := c.organization()
	org.Entitlements.States = []string{"California", "Colorado"}
	if err := first.server.Store().UpdateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	_, secret := c.token(first)
	const path = "/api/v1/attendees?state=California"
	for _, in := range c.instances {
		if a := in.get(path, secret); a.status != http.StatusOK {
			t.Fatalf("%s: California refused before the change: %d %s", in.name, a.status, a.body)
		}
	}

	took := changeSeenAfter(t, others, path, secret, answer{http.StatusForbidden, bodyForbidden}, func() {
		org.Entitlements.States = []string{"Colorado"}
		if err := first.server.Store().UpdateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("entitlements narrowed through %s: refused by %s after %s, by %s after %s",
		first.name, others[0].name, took[0], others[1].name, took[1])
	for i, d := range took {
		if d >= maxRevocationDelay {
			t.Errorf("%s applied the new entitlements after %s, want under %s", others[i].name, d, maxRevocationDelay)
		}
	}

	took = changeSeenAfter(t, others, "/api/v1/organization", secret, answer{http.StatusUnauthorized, bodyInvalid}, func() {
		if err := first.server.Store().DeleteOrganization(ctx, org.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("organization deleted through %s: its token refused by %s after %s, by %s after %s",
		first.name, others[0].name, took[0], others[1].name, took[1])
	for i, d := range took {
		if d >= maxRevocationDelay {
			t.Errorf("%s refused the deleted organization's token after %s, want under %s", others[i].name, d, maxRevocationDelay)
		}
	}
}
