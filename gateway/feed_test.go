package gateway_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/sqlite"
)

// breakingFeed is a store's change feed that a test can stop with an
// error, as a store that fails its feed does, and keep failing every
// restart until mend: what the feed misses meanwhile it never delivers.
type breakingFeed struct {
	keygate.ChangeFeed
	calls atomic.Int32

	mu      sync.Mutex
	broken  bool
	stopRun context.CancelFunc // ends the run in progress
}

var errFeedBroken = errors.New("the store failed the change feed")

func (f *breakingFeed) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	f.calls.Add(1)
	f.mu.Lock()
	if f.broken {
		f.mu.Unlock()
		return errFeedBroken
	}
	run, stop := context.WithCancel(ctx)
	f.stopRun = stop
	f.mu.Unlock()
	err := f.ChangeFeed.WatchChanges(run, following, fn)
	if ctx.Err() == nil && run.Err() != nil {
		return errFeedBroken
	}
	return err
}

// breakDown stops the running feed and fails every restart until mend.
func (f *breakingFeed) breakDown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken = true
	if f.stopRun != nil {
		f.stopRun()
	}
}

func (f *breakingFeed) mend() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken = false
}

// logLines collects a logger's lines.
type logLines struct{ logtest.Buffer }

// count returns how many lines hold every one of parts.
func (l *logLines) count(parts ...string) int {
	n := 0
lines:
	for _, line := range strings.Split(l.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFeedState waits until the cache's feed is in state.
func waitFeedState(t *testing.T, tokens *gateway.Tokens, state string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); tokens.FeedState() != state; {
		if time.Now().After(deadline) {
			t.Fatalf("the token cache's feed is %q after 10s, want %q", tokens.FeedState(), state)
		}
		time.Sleep(time.Millisecond)
	}
}

// revoke revokes the token with digest d through st.
func revoke(t *testing.T, st keygate.Store, d keygate.TokenDigest) {
	t.Helper()
	ctx := context.Background()
	tok, err := st.FindTokenByHash(ctx, d.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// lookup looks d up and says whether the answer came from the cache.
func lookup(t *testing.T, tokens *gateway.Tokens, d keygate.TokenDigest) (tok *keygate.Token, hit bool) {
	t.Helper()
	before, _, _ := tokens.CacheStats()
	tok, _, err := tokens.Lookup(context.Background(), d)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	after, _, _ := tokens.CacheStats()
	return tok, after > before
}

// testFeedRestart is the outage of a cache's change feed as an operator
// sees it, on a real store: a feed that stops with an error is started
// again until it follows, with one warning for the outage and one line
// for the recovery; while it is down every lookup reads the store, so a
// revocation made then is honoured at once; and once it follows again
// caching resumes, and a token cached before the outage and revoked
// during it, which no change will ever drop, is read again.
func testFeedRestart(t *testing.T, st keygate.Store, org *keygate.Organization) {
	looked, untouched := createToken(t, st, org), createToken(t, st, org)
	var logs logLines
	tokens := gateway.NewTokens(st, gateway.TokensOptions{Logger: logs.logger()})
	feed := &breakingFeed{ChangeFeed: st}
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, feed)
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, tokens)

	for _, d := range []keygate.TokenDigest{looked, untouched} {
		lookup(t, tokens, d)
		if _, hit := lookup(t, tokens, d); !hit {
			t.Fatal("a token looked up twice while the feed follows was read from the store twice")
		}
	}

	feed.breakDown()
	waitFeedState(t, tokens, "restarting")
	revoke(t, st, looked)
	revoke(t, st, untouched)
	if tok, hit := lookup(t, tokens, looked); hit || tok.RevokedAt == nil {
		t.Fatalf("while the feed is down, a token revoked meanwhile answered %+v (from the cache: %v); want the revoked token from the store", tok, hit)
	}
	if _, hit := lookup(t, tokens, looked); hit {
		t.Error("while the feed is down, a lookup was answered from the cache")
	}
	// Several failed restarts make one outage.
	for deadline := time.Now().Add(10 * time.Second); feed.calls.Load() < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("the feed was started %d times in 10s after it stopped; want it restarted with backoff", feed.calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if tokens.FeedState() != "restarting" {
		t.Fatalf("feed state %q while every restart fails, want restarting", tokens.FeedState())
	}

	feed.mend()
	waitUntilFollowing(t, tokens)
	if tok, _ := lookup(t, tokens, untouched); tok.RevokedAt == nil {
		t.Fatal("after the feed came back, a token cached before the outage and revoked during it answered as active")
	}
	if tok, hit := lookup(t, tokens, untouched); !hit || tok.RevokedAt == nil {
		t.Errorf("after the feed came back: %+v from the cache: %v; want the revoked token cached", tok, hit)
	}
	if tok, _ := lookup(t, tokens, looked); tok.RevokedAt == nil {
		t.Error("after the feed came back, a token revoked during the outage answered as active")
	}

	restarts := tokens.FeedRestarts()
	if restarts < 3 || uint64(feed.calls.Load()) != restarts+1 {
		t.Errorf("FeedRestarts = %d with %d WatchChanges calls; want every call after the first counted", restarts, feed.calls.Load())
	}
	if n := logs.count("level=WARN", "change feed stopped"); n != 1 {
		t.Errorf("%d warnings for one outage of the feed, want 1:\n%s", n, logs.String())
	}
	// The recovery is logged just after the state changes.
	for deadline := time.Now().Add(5 * time.Second); logs.count("level=INFO", "follows again", "restarts=") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := logs.count("level=INFO", "follows again", "restarts="); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, logs.String())
	}
	if n := logs.count("level=DEBUG", "stopped again"); n < 2 {
		t.Errorf("%d debug lines for the failed restarts, want one each:\n%s", n, logs.String())
	}
}

func TestFeedThatStopsIsRestartedSQLite(t *testing.T) {
	st, org := newStallingStore(t)
	testFeedRestart(t, st.Store, org)
}

func TestFeedThatStopsIsRestartedPostgres(t *testing.T) {
	st, org := withOrg(t, openPostgres(t, pgtest.NewSchema(t)))
	testFeedRestart(t, st, org)
}

// withOrg makes an organization in st for tests' tokens.
func withOrg(t *testing.T, st keygate.Store) (keygate.Store, *keygate.Organization) {
	t.Helper()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := st.CreateOrganization(context.Background(), org); err != nil {
		t.Fatal(err)
	}
	return st, org
}

// PostgreSQL's feed loses its connection (pg_terminate_backend, as an
// operator or a database restart does) and cannot get it back yet (the
// database refuses new connections; the pool's stay). While it
// reconnects the cache says so and answers no lookup from what it holds:
// a token revoked meanwhile through another instance is refused at once,
// although no change can reach this one. Once the feed is back it has
// caught up on what it missed, so a cached token revoked meanwhile and not
// looked up since is refused too, and what it did not miss stays cached.
func TestFeedReconnectingPostgres(t *testing.T) {
	base := pgtest.NewSchema(t)
	// Short: PostgreSQL keeps 63 bytes of it.
	name := fmt.Sprintf("kgtest-feed-%d", time.Now().UnixNano()%1e9)
	proxy := pgtest.NewProxy(t, base)
	st, org := withOrg(t, openPostgres(t, proxy.URL(pgtest.WithParam(t, base, "application_name", name))))
	elsewhere := openPostgres(t, base)
	looked, untouched, kept := createToken(t, st, org), createToken(t, st, org), createToken(t, st, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, st)
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, tokens)
	for _, d := range []keygate.TokenDigest{looked, untouched, kept} {
		lookup(t, tokens, d)
	}

	proxy.Refuse()
	// The feed is ready once it has read where it begins; its listening
	// connection comes a moment later, or is refused.
	for deadline := time.Now().Add(10 * time.Second); tokens.FeedState() != "reconnecting"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the token cache's feed is %q 10s after its connection was refused, want reconnecting", tokens.FeedState())
		}
		pgtest.Terminate(t, base, name+" (changes)")
	}
	if tokens.Following() {
		t.Error("Following() while the feed reconnects")
	}
	revoke(t, elsewhere, looked)
	revoke(t, elsewhere, untouched)
	if tok, hit := lookup(t, tokens, looked); hit || tok.RevokedAt == nil {
		t.Fatalf("while the feed reconnects, a token revoked elsewhere meanwhile answered %+v (from the cache: %v); want the revoked token from the store", tok, hit)
	}

	proxy.Restore()
	waitUntilFollowing(t, tokens)
	if tok, _ := lookup(t, tokens, untouched); tok.RevokedAt == nil {
		t.Fatal("after the feed reconnected, a token cached before and revoked while it was away answered as active")
	}
	if tok, hit := lookup(t, tokens, kept); !hit || tok.RevokedAt != nil {
		t.Errorf("after the feed reconnected, a token nobody changed answered %+v from the cache: %v; want it still cached", tok, hit)
	}
	if n := tokens.FeedRestarts(); n != 0 {
		t.Errorf("%d restarts of a feed that reconnected by itself, want 0", n)
	}
}

// SQLite's feed fails for good when it cannot read where it begins (here
// the changes table is away, as a damaged or half-migrated file would
// have it): the cache starts it again until it can, and then caches.
func TestFeedThatCannotBeginIsRetriedSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keygate.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, sqlite.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := st.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	d := createToken(t, st, org)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE changes RENAME TO changes_away`); err != nil {
		t.Fatal(err)
	}

	var logs logLines
	tokens := gateway.NewTokens(st, gateway.TokensOptions{Logger: logs.logger()})
	watch, cancel := context.WithCancel(ctx)
	followed := tokens.Follow(watch, st)
	t.Cleanup(func() { cancel(); <-followed })
	waitFeedState(t, tokens, "restarting")
	if _, hit := lookup(t, tokens, d); hit {
		t.Fatal("a lookup was answered from the cache before the feed began")
	}

	if _, err := db.Exec(`ALTER TABLE changes_away RENAME TO changes`); err != nil {
		t.Fatal(err)
	}
	waitUntilFollowing(t, tokens)
	lookup(t, tokens, d)
	if _, hit := lookup(t, tokens, d); !hit {
		t.Error("once the feed began, the token was not cached")
	}
	if n := logs.count("level=WARN", "change feed stopped", "no such table"); n != 1 {
		t.Errorf("%d warnings naming the feed's error, want 1:\n%s", n, logs.String())
	}
}

// SQLite's feed that cannot read the changes table for a while (here the
// table is away, as a damaged or half-migrated file would have it) says
// so: the cache reports reconnecting and answers no lookup from what it
// holds, since a change committed meanwhile (by the CLI, say) would not
// reach it; once reads work again it has caught up, and caches again.
func TestFeedWhoseReadsFailSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keygate.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, sqlite.WithPollInterval(20*time.Millisecond), sqlite.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, org := withOrg(t, st)
	d := createToken(t, st, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	watch, cancel := context.WithCancel(ctx)
	followed := tokens.Follow(watch, st)
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, tokens)
	lookup(t, tokens, d)

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE changes RENAME TO changes_away`); err != nil {
		t.Fatal(err)
	}
	waitFeedState(t, tokens, "reconnecting")
	if _, hit := lookup(t, tokens, d); hit {
		t.Fatal("a lookup was answered from the cache while the feed could not read changes")
	}

	if _, err := db.Exec(`ALTER TABLE changes_away RENAME TO changes`); err != nil {
		t.Fatal(err)
	}
	waitUntilFollowing(t, tokens)
	if _, hit := lookup(t, tokens, d); !hit {
		t.Error("once the feed read changes again, the token was not answered from the cache")
	}
}

// While the feed is down a store that stops answering is an outage like
// any other: tokens cached before keep answering for stale_if_error,
// which an instance whose feed once failed used to lose for good.
func TestCacheAnswersStaleWhileItsFeedIsDown(t *testing.T) {
	st, org := newStallingStore(t)
	d := createToken(t, st, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{StoreTimeout: 50 * time.Millisecond})
	feed := &breakingFeed{ChangeFeed: st.Store}
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, feed)
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, tokens)
	lookup(t, tokens, d)

	feed.breakDown()
	waitFeedState(t, tokens, "restarting")
	release := st.stallLookups()
	defer release()
	tok, _, err := tokens.Lookup(context.Background(), d)
	if err != nil || tok.RevokedAt != nil {
		t.Fatalf("with the feed down and the store not answering: %+v, %v; want the cached token", tok, err)
	}
}

// Follow's context ending stops the feed for good, without a restart or a
// warning.
func TestFeedStoppedByItsContextIsNotRestarted(t *testing.T) {
	st, _ := newStallingStore(t)
	var logs logLines
	tokens := gateway.NewTokens(st, gateway.TokensOptions{Logger: logs.logger()})
	if s := tokens.FeedState(); s != "none" {
		t.Errorf("feed state before Follow %q, want none", s)
	}
	feed := &breakingFeed{ChangeFeed: st.Store}
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, feed)
	waitUntilFollowing(t, tokens)
	cancel()
	<-followed
	if s := tokens.FeedState(); s != "stopped" {
		t.Errorf("feed state after its context ended %q, want stopped", s)
	}
	if n := feed.calls.Load(); n != 1 || tokens.FeedRestarts() != 0 {
		t.Errorf("%d WatchChanges calls, %d restarts; want 1 and 0", n, tokens.FeedRestarts())
	}
	if n := logs.count("level=WARN"); n != 0 {
		t.Errorf("warnings when the feed's context ended:\n%s", logs.String())
	}
}

// A feed that fails every time is started again with backoff, not in a
// loop: 100 ms doubling (each wait at least half its step) allows at most
// five restarts in the first second.
func TestFeedThatKeepsFailingBacksOff(t *testing.T) {
	st, _ := newStallingStore(t)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{Logger: slog.New(slog.DiscardHandler)})
	feed := &breakingFeed{ChangeFeed: st.Store, broken: true}
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, feed)
	time.Sleep(time.Second)
	cancel()
	<-followed
	if n := feed.calls.Load(); n < 2 || n > 6 {
		t.Errorf("the feed was started %d times in a second of failing; want 2 to 6", n)
	}
}
