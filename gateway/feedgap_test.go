package gateway_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// pruner is a store whose old changes can be pruned on demand, as its
// watchers do with changes older than an hour.
type pruner interface {
	PruneChanges(ctx context.Context, cutoff time.Time) error
}

// testFeedAwayPastPruning is a feed away for longer than changes are
// kept: a token cached before is revoked meanwhile through elsewhere and
// the change saying so pruned before the feed is back, so no replay can
// deliver it. The feed says so, and the cache starts over as after a
// restart, dropping everything: the revoked token is refused, and nothing
// cached before answers from the cache.
func testFeedAwayPastPruning(t *testing.T, st, elsewhere keygate.Store, org *keygate.Organization, feed keygate.ChangeFeed, away, back func()) {
	revoked, kept := createToken(t, st, org), createToken(t, st, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, feed)
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, tokens)
	for _, d := range []keygate.TokenDigest{revoked, kept} {
		lookup(t, tokens, d)
		if _, hit := lookup(t, tokens, d); !hit {
			t.Fatal("a token looked up twice while the feed follows was read from the store twice")
		}
	}

	away()
	revoke(t, elsewhere, revoked)
	// A prune keeps the newest change: this one, not the revocation.
	createToken(t, elsewhere, org)
	if err := elsewhere.(pruner).PruneChanges(context.Background(), time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("PruneChanges: %v", err)
	}
	back()
	backAt := time.Now()
	for deadline := backAt.Add(30 * time.Second); tokens.FeedRestarts() == 0 || !tokens.Following(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the feed is %q after %d restarts, 30s after it came back to pruned changes; want it started over and following",
				tokens.FeedState(), tokens.FeedRestarts())
		}
	}
	t.Logf("the cache followed again, started over, %s after its feed came back", time.Since(backAt).Round(time.Millisecond))
	if tok, _ := lookup(t, tokens, revoked); tok.RevokedAt == nil {
		t.Fatal("a token cached before the feed went away, revoked while it was and the change pruned, answered as active")
	}
	if _, hit := lookup(t, tokens, kept); hit {
		t.Error("after the feed came back to pruned changes, a token cached before answered from the cache; want everything dropped")
	}
}

// PostgreSQL's feed loses its connection and cannot reconnect (the
// database refuses new connections) while the revocation's change is
// pruned: reconnecting, it finds changes after the last it delivered
// pruned, and the cache starts over instead of resuming.
func TestFeedAwayPastPruningPostgres(t *testing.T) {
	base := pgtest.NewSchema(t)
	// Short: PostgreSQL keeps 63 bytes of it.
	name := fmt.Sprintf("kgtest-pruned-%d", time.Now().UnixNano()%1e9)
	proxy := pgtest.NewProxy(t, base)
	st, org := withOrg(t, openPostgres(t, proxy.URL(pgtest.WithParam(t, base, "application_name", name))))
	elsewhere := openPostgres(t, base)
	away := func() {
		proxy.Refuse()
		// The listening connection may come a moment after the feed
		// follows: terminate it until the feed says it reconnects.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if n := pgtest.Terminate(t, base, name+" (changes)"); n == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no listening connection to terminate within 10s")
			}
		}
	}
	testFeedAwayPastPruning(t, st, elsewhere, org, st, away, proxy.Restore)
}

// SQLite's feed stalls mid-delivery (its process stopped, say) while
// another process on the same file revokes a token and prunes the change:
// its next poll finds changes after the last it delivered pruned, and the
// cache starts over.
func TestFeedAwayPastPruningSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keygate.db")
	st, org := withOrg(t, openSQLite(t, path))
	elsewhere := openSQLite(t, path)
	feed := &stallingFeed{ChangeFeed: st}
	away := func() { feed.stall(t, func() { createToken(t, elsewhere, org) }) }
	testFeedAwayPastPruning(t, st, elsewhere, org, feed, away, feed.resume)
}

// stallingFeed is a store's change feed that a test can stall in the
// middle of delivering a change, as a stopped process or a suspended
// machine would, until resume.
type stallingFeed struct {
	keygate.ChangeFeed
	stalled chan struct{} // receives when a delivery waits

	mu   sync.Mutex
	gate chan struct{} // deliveries wait until it is closed; nil: none do
}

func (f *stallingFeed) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	return f.ChangeFeed.WatchChanges(ctx, following, func(c keygate.Change) {
		f.mu.Lock()
		gate := f.gate
		f.mu.Unlock()
		if gate != nil {
			f.stalled <- struct{}{}
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		fn(c)
	})
}

// stall makes deliveries wait, makes a change with change, and returns
// once the feed waits delivering it.
func (f *stallingFeed) stall(t *testing.T, change func()) {
	t.Helper()
	f.stalled = make(chan struct{}, 1)
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
	change()
	select {
	case <-f.stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the feed delivered nothing within 10s of a change")
	}
}

// resume lets the stalled delivery through, and those after it.
func (f *stallingFeed) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.gate)
	f.gate = nil
}

// PostgreSQL's listening connection goes silent (a network path that
// drops packets: nothing is closed, nothing comes back) with no poll due
// for a minute: the feed notices by the round trips it makes on it, and
// the cache reconnects, answering nothing from its entries, so a token
// revoked meanwhile through another handle is not served from the cache
// (stale_if_error is off here: the store is unreachable too). Once the
// path is back the revocation is applied.
func TestFeedSilentConnectionPostgres(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	st, err := postgres.Open(context.Background(), proxy.URL(base), postgres.WithPollInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, org := withOrg(t, st)
	elsewhere := openPostgres(t, base)
	d := createToken(t, st, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{StaleIfError: -1})
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, st)
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, tokens)
	lookup(t, tokens, d)
	if _, hit := lookup(t, tokens, d); !hit {
		t.Fatal("a token looked up twice while the feed follows was read from the store twice")
	}
	waitUntilListening(t, tokens, elsewhere, org)

	proxy.Blackhole()
	silent := time.Now()
	for deadline := silent.Add(30 * time.Second); tokens.FeedState() != "reconnecting"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the token cache's feed is %q 30s after its connection went silent, want reconnecting", tokens.FeedState())
		}
	}
	t.Logf("the cache was reconnecting %s after its feed's connection went silent", time.Since(silent).Round(10*time.Millisecond))
	revoke(t, elsewhere, d)
	if tok, _, err := tokens.Lookup(context.Background(), d); err == nil && tok.RevokedAt == nil {
		t.Fatal("while the feed's connection is silent, a token revoked elsewhere answered as active")
	}

	proxy.Forward()
	for deadline := time.Now().Add(30 * time.Second); !tokens.Following(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the token cache's feed is %q 30s after its connection came back, want following", tokens.FeedState())
		}
	}
	if tok, _ := lookup(t, tokens, d); tok.RevokedAt == nil {
		t.Fatal("after the feed's connection came back, a token revoked while it was silent answered as active")
	}
}

// waitUntilListening returns once a revocation through elsewhere reaches
// the cache, which with a poll interval of a minute only a notification
// brings: the feed's listening connection is up.
func waitUntilListening(t *testing.T, tokens *gateway.Tokens, elsewhere keygate.Store, org *keygate.Organization) {
	t.Helper()
	probe := createToken(t, elsewhere, org)
	lookup(t, tokens, probe)
	revoke(t, elsewhere, probe)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if tok, _ := lookup(t, tokens, probe); tok.RevokedAt != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a revocation did not reach the cache within 30s")
		}
	}
}
