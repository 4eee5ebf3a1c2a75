package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// feed is a running WatchChanges and what it delivered.
type feed struct {
	t       *testing.T
	changes chan keygate.Change
	// said holds what the feed said of itself after it began: whether it
	// follows, and the seq of the last change it had delivered then.
	said    chan followingSaid
	lastSeq int64
	// created holds the tokens a fixture created whose creation change
	// has not arrived yet; next skips those changes, so tests expect
	// revocations alone.
	created *sync.Map
}

func watch(t *testing.T, s *postgres.Store) *feed {
	t.Helper()
	f := &feed{t: t, changes: make(chan keygate.Change, 10000), said: make(chan followingSaid, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	// Both callbacks run on WatchChanges' goroutine, one at a time.
	began, delivered := false, int64(0)
	following := func(following bool) {
		if !began {
			began = true
			close(ready)
			return
		}
		f.said <- followingSaid{following: following, afterSeq: delivered}
	}
	go func() {
		done <- s.WatchChanges(ctx, following, func(c keygate.Change) {
			delivered = c.Seq
			f.changes <- c
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchChanges returned %v", err)
		}
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchChanges did not read where it begins within 10s")
	}
	return f
}

// followingSaid is one call of WatchChanges' following after it began.
type followingSaid struct {
	following bool
	afterSeq  int64
}

// nextSaid returns what the feed next says of itself, failing the test
// after wait.
func (f *feed) nextSaid(wait time.Duration) followingSaid {
	f.t.Helper()
	select {
	case said := <-f.said:
		return said
	case <-time.After(wait):
		f.t.Fatalf("the feed said nothing of itself within %s", wait)
		return followingSaid{}
	}
}

// next returns the next change, failing the test after wait.
func (f *feed) next(wait time.Duration) keygate.Change {
	f.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case c := <-f.changes:
			if c.Seq <= f.lastSeq {
				f.t.Errorf("change %+v arrived after seq %d", c, f.lastSeq)
			}
			f.lastSeq = c.Seq
			if f.created != nil && c.Kind == keygate.ChangeTokenCreated {
				if _, creation := f.created.LoadAndDelete(c.ID); creation {
					continue
				}
			}
			return c
		case <-timeout:
			f.t.Fatalf("no change within %s", wait)
			return keygate.Change{}
		}
	}
}

// expect waits for a change to token id, skipping none.
func (f *feed) expect(id string, wait time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	if c := f.next(wait); c.Kind != keygate.ChangeToken || c.ID != id {
		f.t.Fatalf("got change %+v, want token %s", c, id)
	}
	return time.Since(start)
}

// fixture is an organization with tokens to revoke.
type fixture struct {
	t     *testing.T
	store keygate.Store
	org   *keygate.Organization
	// created: see feed.created.
	created sync.Map
}

func newFixture(t *testing.T, s keygate.Store) *fixture {
	t.Helper()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(context.Background(), org); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: s, org: org}
}

func (f *fixture) token() *keygate.Token {
	f.t.Helper()
	id := keygate.NewID("tok")
	tok := &keygate.Token{
		ID: id, OrganizationID: f.org.ID, API: "cannmenus", Name: "t", Environment: keygate.EnvironmentLive,
		Hash: keygate.HashToken(id), Hint: "cm_live_…" + id[len(id)-4:], CreatedBy: "usr_test",
	}
	f.created.Store(tok.ID, true)
	if err := f.store.CreateToken(context.Background(), tok, 0); err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *fixture) revoke(via keygate.Store, id string) {
	f.t.Helper()
	if err := via.RevokeToken(context.Background(), id, time.Now()); err != nil {
		f.t.Fatalf("RevokeToken: %v", err)
	}
}

// ready revokes probe tokens until the feed delivers one: from then on it
// is listening.
func (f *fixture) ready(fd *feed) {
	f.t.Helper()
	fd.created = &f.created
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		probe := f.token()
		f.revoke(f.store, probe.ID)
		select {
		case c := <-fd.changes:
			fd.lastSeq = c.Seq
			// Earlier probes may follow; drain them.
			for {
				select {
				case c := <-fd.changes:
					fd.lastSeq = c.Seq
				case <-time.After(200 * time.Millisecond):
					// Tokens created so far were created before the
					// feed began or have been drained.
					f.created.Clear()
					return
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.t.Fatal("WatchChanges delivered nothing within 10s")
}

func appName(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return "kgtest-" + hex.EncodeToString(b[:])
}

func openWith(t *testing.T, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Notifications carry the feed: with a poll interval of a minute, changes
// still arrive at once.
func TestWatchIsDrivenByNotifications(t *testing.T) {
	url := pgtest.NewSchema(t)
	s := openWith(t, url, postgres.WithPollInterval(time.Minute))
	other := openWith(t, url)
	fx := newFixture(t, other)
	fd := watch(t, s)
	fx.ready(fd)
	var worst time.Duration
	for range 5 {
		tok := fx.token()
		fx.revoke(other, tok.ID)
		worst = max(worst, fd.expect(tok.ID, 5*time.Second))
	}
	t.Logf("slowest of 5 revocations to reach another handle's feed: %s", worst)
}

// pg_terminate_backend on the listening connection: the feed reconnects,
// delivers the revocation made while it was down, and listens again.
func TestWatchResumesAfterTheConnectionIsTerminated(t *testing.T) {
	base := pgtest.NewSchema(t)
	name := appName(t)
	s := openWith(t, pgtest.WithParam(t, base, "application_name", name), postgres.WithPollInterval(time.Minute))
	other := openWith(t, base)
	fx := newFixture(t, other)
	fd := watch(t, s)
	fx.ready(fd)

	for round := range 3 {
		if n := pgtest.Terminate(t, base, name+" (changes)"); n != 1 {
			t.Fatalf("round %d: terminated %d listening connections, want 1", round, n)
		}
		during := fx.token()
		fx.revoke(other, during.ID)
		took := fd.expect(during.ID, 10*time.Second)
		t.Logf("round %d: revocation made while the listener was down arrived %s later", round, took)

		after := fx.token()
		fx.revoke(other, after.ID)
		fd.expect(after.ID, 5*time.Second)
	}
}

// While the listener cannot reconnect (the database refuses new
// connections after pg_terminate_backend), the feed says it no longer
// follows; it says it follows again only once it has delivered the
// revocation committed meanwhile. A cache that trusted it in between
// would have answered for the revoked token.
func TestWatchSaysItFollowsAgainOnlyOnceCaughtUp(t *testing.T) {
	base := pgtest.NewSchema(t)
	name := appName(t)
	proxy := pgtest.NewProxy(t, base)
	s := openWith(t, proxy.URL(pgtest.WithParam(t, base, "application_name", name)), postgres.WithPollInterval(time.Minute))
	other := openWith(t, base)
	fx := newFixture(t, other)
	fd := watch(t, s)
	fx.ready(fd)

	proxy.Refuse()
	if n := pgtest.Terminate(t, base, name+" (changes)"); n != 1 {
		t.Fatalf("terminated %d listening connections, want 1", n)
	}
	if said := fd.nextSaid(10 * time.Second); said.following {
		t.Fatalf("after losing its connection the feed said %+v, want not following", said)
	}
	during := fx.token()
	fx.revoke(other, during.ID)
	select {
	case said := <-fd.said:
		t.Fatalf("with every reconnection refused, the feed said %+v", said)
	default:
	}

	proxy.Restore()
	revoked := fd.next(10 * time.Second)
	if revoked.Kind != keygate.ChangeToken || revoked.ID != during.ID {
		t.Fatalf("after reconnecting the feed delivered %+v, want the revocation of %s", revoked, during.ID)
	}
	if said := fd.nextSaid(10 * time.Second); !said.following || said.afterSeq < revoked.Seq {
		t.Fatalf("after reconnecting the feed said %+v, want following after seq %d", said, revoked.Seq)
	}
}

// A listening connection whose network path goes silent (the proxy holds
// every byte, nothing is closed) is noticed by the round trips the feed
// makes on it, although no poll is due for a minute: the feed says it does
// not follow, and once the path is back it reconnects, delivers the
// revocation committed meanwhile and says it follows again.
func TestWatchNoticesASilentConnection(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	s := openWith(t, proxy.URL(base), postgres.WithPollInterval(time.Minute))
	other := openWith(t, base)
	fx := newFixture(t, other)
	fd := watch(t, s)
	fx.ready(fd)

	proxy.Blackhole()
	if said := fd.nextSaid(30 * time.Second); said.following {
		t.Fatalf("with its connection silent the feed said %+v, want not following", said)
	}
	during := fx.token()
	fx.revoke(other, during.ID)

	proxy.Forward()
	revoked := fd.next(30 * time.Second)
	if revoked.Kind != keygate.ChangeToken || revoked.ID != during.ID {
		t.Fatalf("after reconnecting the feed delivered %+v, want the revocation of %s", revoked, during.ID)
	}
	if said := fd.nextSaid(30 * time.Second); !said.following {
		t.Fatalf("after reconnecting the feed said %+v, want following", said)
	}
}

// A change whose notification never came (written without one) arrives
// with the next poll.
func TestWatchPollsForMissedNotifications(t *testing.T) {
	url := pgtest.NewSchema(t)
	s := openWith(t, url, postgres.WithPollInterval(200*time.Millisecond))
	fx := newFixture(t, s)
	fd := watch(t, s)
	fx.ready(fd)
	pgtest.Exec(t, url, `INSERT INTO changes (kind, id, created_at) VALUES ('token', 'tok_silent', now())`)
	took := fd.expect("tok_silent", 5*time.Second)
	t.Logf("change without a notification arrived after %s (poll interval 200ms)", took)
}

// Many handles revoking at once: every change arrives once, in seq order.
// Change rows commit in seq order, so the feed never skips a seq that
// committed after a higher one.
func TestWatchMissesNothingUnderConcurrentWrites(t *testing.T) {
	url := pgtest.NewSchema(t)
	s := openWith(t, url, postgres.WithPollInterval(50*time.Millisecond))
	handles := []keygate.Store{s, openWith(t, url), openWith(t, url)}
	fx := newFixture(t, s)
	fd := watch(t, s)
	fx.ready(fd)

	const perHandle = 40
	var tokens []*keygate.Token
	for range perHandle * len(handles) {
		tokens = append(tokens, fx.token())
	}
	var wg sync.WaitGroup
	for i, h := range handles {
		for j := range perHandle {
			tok := tokens[i*perHandle+j]
			wg.Go(func() { fx.revoke(h, tok.ID) })
		}
	}
	wg.Wait()
	want := map[string]bool{}
	for _, tok := range tokens {
		want[tok.ID] = true
	}
	for len(want) > 0 {
		c := fd.next(10 * time.Second)
		if !want[c.ID] {
			t.Fatalf("unexpected or repeated change %+v", c)
		}
		delete(want, c.ID)
	}
}

// Cut off from PostgreSQL, the store answers EUNAVAILABLE (not a panic, not
// a hang); when the database is back it works again without a restart, and
// its feed delivers what was revoked meanwhile.
func TestDatabaseOutage(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	s := openWith(t, proxy.URL(base), postgres.WithPollInterval(time.Minute))
	direct := openWith(t, base)
	fx := newFixture(t, direct)
	tok := fx.token()
	revokedMeanwhile := fx.token()
	fd := watch(t, s)
	fx.ready(fd)
	ctx := context.Background()

	proxy.Cut()
	start := time.Now()
	_, err := s.FindTokenByHash(ctx, tok.Hash)
	if keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Fatalf("FindTokenByHash while cut off = %v, want EUNAVAILABLE", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("FindTokenByHash took %s to fail", took)
	}
	if err := s.Ping(ctx); keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Errorf("Ping while cut off = %v, want EUNAVAILABLE", err)
	}
	err = s.CreateOrganization(ctx, &keygate.Organization{Slug: "cut-off", Name: "Cut off", Plan: "free"})
	if keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Errorf("CreateOrganization while cut off = %v, want EUNAVAILABLE", err)
	}
	fx.revoke(direct, revokedMeanwhile.ID)
	time.Sleep(300 * time.Millisecond) // the feed retries meanwhile

	proxy.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.FindTokenByHash(ctx, tok.Hash)
		if err == nil {
			if got.ID != tok.ID {
				t.Fatalf("FindTokenByHash after recovery = %s, want %s", got.ID, tok.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FindTokenByHash still fails 10s after the database is back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fd.expect(revokedMeanwhile.ID, 10*time.Second)
}

func TestErrorsNeverShowThePassword(t *testing.T) {
	for _, url := range []string{
		"postgres://keygate:s3cret-pw@127.0.0.1:1/keygate?connect_timeout=2",
		"postgres://keygate:s3cret-pw@[::1/keygate",
		"postgres://keygate:s3cret-pw@127.0.0.1:5432/keygate?pool_max_conns=many",
	} {
		s, err := postgres.Open(context.Background(), url)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}

// Times are kept to the millisecond, as in the SQLite store, whatever
// precision the caller passes.
func TestTimesKeptToTheMillisecond(t *testing.T) {
	s := openWith(t, pgtest.NewSchema(t))
	fx := newFixture(t, s)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	tok := &keygate.Token{
		OrganizationID: fx.org.ID, API: "cannmenus", Name: "t", Environment: keygate.EnvironmentLive,
		Hash: keygate.HashToken("precise"), Hint: "cm_live_…cise", CreatedBy: "usr_test",
		CreatedAt: at, ExpiresAt: &at,
	}
	if err := s.CreateToken(context.Background(), tok, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindTokenByID(context.Background(), tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 3, 4, 4, 6, 7, 123000000, time.UTC)
	if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC || !got.ExpiresAt.Equal(want) {
		t.Errorf("CreatedAt %s, ExpiresAt %s; want both %s", got.CreatedAt, got.ExpiresAt, want)
	}
}

// After pg_terminate_backend on every connection of a store (as a database
// restart does), the pool's idle connections are dead; the next token
// lookup still succeeds, on a fresh connection.
func TestLookupsSurviveTerminatedConnections(t *testing.T) {
	base := pgtest.NewSchema(t)
	name := appName(t)
	s := openWith(t, pgtest.WithParam(t, base, "application_name", name))
	fx := newFixture(t, s)
	tok := fx.token()
	ctx := context.Background()
	for round := range 3 {
		// Several lookups at once leave several idle connections behind.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { s.FindTokenByHash(ctx, tok.Hash) })
		}
		wg.Wait()
		if n := pgtest.Terminate(t, base, name); n == 0 {
			t.Fatalf("round %d: no connection to terminate", round)
		}
		time.Sleep(50 * time.Millisecond) // the backends exit
		if round == 1 {
			// /readyz's check meets the dead connections first.
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after the connections were terminated: %v", err)
			}
		}
		if _, err := s.FindTokenByHash(ctx, tok.Hash); err != nil {
			t.Fatalf("round %d: FindTokenByHash after the connections were terminated: %v", round, err)
		}
		if _, err := s.FindOrganizationByID(ctx, fx.org.ID); err != nil {
			t.Fatalf("round %d: FindOrganizationByID after the connections were terminated: %v", round, err)
		}
	}
}

// Instances flushing overlapping batches at once (the same tokens, the
// same hours): no batch fails, no count is lost, and last-used times end
// at the latest any instance wrote.
func TestConcurrentBatchesLoseNothing(t *testing.T) {
	url := pgtest.NewSchema(t)
	handles := []*postgres.Store{openWith(t, url), openWith(t, url), openWith(t, url)}
	fx := newFixture(t, handles[0])
	var tokens []*keygate.Token
	for range 50 {
		tokens = append(tokens, fx.token())
	}
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	minute := time.Now().UTC().Truncate(time.Minute)
	const flushes = 15
	var wg sync.WaitGroup
	for h, s := range handles {
		wg.Go(func() {
			for f := range flushes {
				var counts []keygate.UsageCount
				lastUsed := map[string]time.Time{}
				for i, tok := range tokens {
					// Each handle lists the rows in its own order.
					tok = tokens[(i*(h+1)+f)%len(tokens)]
					counts = append(counts,
						keygate.UsageCount{OrganizationID: fx.org.ID, TokenID: tok.ID, Hour: hour, Requests: 1},
						keygate.UsageCount{OrganizationID: fx.org.ID, TokenID: tok.ID, Hour: hour.Add(-time.Hour), Requests: 2, Errors: 1})
					lastUsed[tok.ID] = minute.Add(time.Duration(f*len(handles)+h) * time.Minute)
				}
				if err := s.RecordUsage(ctx, "", counts); err != nil {
					t.Errorf("RecordUsage: %v", err)
				}
				if err := s.TouchTokens(ctx, lastUsed); err != nil {
					t.Errorf("TouchTokens: %v", err)
				}
			}
		})
	}
	wg.Wait()
	usage, err := handles[0].ListUsage(ctx, keygate.UsageQuery{OrganizationID: fx.org.ID, From: hour.Add(-time.Hour), To: hour.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var requests, errors int64
	for _, u := range usage {
		requests += u.Requests
		errors += u.Errors
	}
	n := int64(len(handles) * flushes * len(tokens))
	if len(usage) != 2*len(tokens) || requests != 3*n || errors != n {
		t.Errorf("%d rows, %d requests, %d errors; want %d rows, %d requests, %d errors", len(usage), requests, errors, 2*len(tokens), 3*n, n)
	}
	latest := minute.Add(time.Duration((flushes-1)*len(handles)+len(handles)-1) * time.Minute)
	for _, tok := range tokens {
		got, err := handles[0].FindTokenByID(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(latest) {
			t.Fatalf("token %s LastUsedAt = %v, want %s", tok.ID, got.LastUsedAt, latest)
		}
	}
}
