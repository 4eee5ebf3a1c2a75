package storetest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var changeTests = []test{
	{"DeliversChangesAfterTheCall", testChangesAfterTheCall},
	{"DeliversTheFirstChangeAfterReady", testChangesAfterReady},
	{"FailedMutationsPublishNothing", testChangesFailedMutations},
	{"DeleteOrganization", testChangesDeleteOrganization},
	{"AcrossHandles", testChangesAcrossHandles},
	{"StopsWhenContextEnds", testChangesStop},
	{"StopsWhenUndeliveredChangesWerePruned", testChangesPrunedUndelivered},
}

// changeTimeout bounds how long the suite waits for a change to arrive.
const changeTimeout = 10 * time.Second

func testChangesAfterTheCall(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	before := e.createToken(org.ID, "cannmenus", e.now)
	after := e.createToken(org.ID, "cannmenus", e.now)
	must(t, "RevokeToken before watching", e.store.RevokeToken(e.ctx, before.ID, e.now))

	w := e.watch(e.store, e.store)
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, after.ID, e.now))
	org.Plan = "pro"
	must(t, "UpdateOrganization", e.store.UpdateOrganization(e.ctx, org))
	// A new token is news too: a cache may hold its hash as unknown.
	created := e.createToken(org.ID, "cannmenus", e.now)

	equal(t, "changes", w.sync(), []keygate.Change{
		{Kind: keygate.ChangeToken, ID: after.ID},
		{Kind: keygate.ChangeOrganization, ID: org.ID},
		{Kind: keygate.ChangeTokenCreated, ID: created.ID},
	})
}

// A cache keeps what it reads once the feed says it follows, so the first
// change committed after that must arrive, with no warm-up.
func testChangesAfterReady(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.now)
	ctx, cancel := context.WithCancel(e.ctx)
	ready := make(chan struct{})
	var began sync.Once
	changes := make(chan keygate.Change, 10)
	done := make(chan error, 1)
	go func() {
		done <- e.store.WatchChanges(ctx, func(following bool) {
			if following {
				began.Do(func() { close(ready) })
			}
		}, func(c keygate.Change) {
			select {
			case changes <- c:
			case <-ctx.Done():
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchChanges returned %v after its context ended, want nil", err)
		}
	}()
	select {
	case <-ready:
	case c := <-changes:
		t.Fatalf("WatchChanges delivered %+v before following(true)", c)
	case <-time.After(changeTimeout):
		t.Fatalf("WatchChanges did not call following(true) within %s", changeTimeout)
	}
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, tok.ID, e.now))
	select {
	case c := <-changes:
		c.Seq = 0
		equal(t, "the first change after following(true)", c, keygate.Change{Kind: keygate.ChangeToken, ID: tok.ID})
	case <-time.After(changeTimeout):
		t.Fatalf("the revocation committed after following(true) did not arrive within %s", changeTimeout)
	}
}

func testChangesFailedMutations(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.now)
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, tok.ID, e.now))
	e.createToken(org.ID, "canskan", e.now)

	w := e.watch(e.store, e.store)
	wantCode(t, "RevokeToken twice", e.store.RevokeToken(e.ctx, tok.ID, e.now), keygate.ENOTFOUND)
	wantCode(t, "RevokeToken(unknown)", e.store.RevokeToken(e.ctx, "tok_missing", e.now), keygate.ENOTFOUND)
	err := e.store.UpdateOrganization(e.ctx, &keygate.Organization{ID: "org_missing", Name: "x", Plan: "free"})
	wantCode(t, "UpdateOrganization(unknown)", err, keygate.ENOTFOUND)
	wantCode(t, "DeleteOrganization(unknown)", e.store.DeleteOrganization(e.ctx, "org_missing"), keygate.ENOTFOUND)
	again := e.newToken(org.ID, "cannmenus", e.now)
	again.Hash = tok.Hash
	wantCode(t, "CreateToken(taken hash)", e.store.CreateToken(e.ctx, again, 0), keygate.ECONFLICT)
	wantCode(t, "CreateToken(unknown organization)", e.store.CreateToken(e.ctx, e.newToken("org_missing", "cannmenus", e.now), 0), keygate.ENOTFOUND)
	err = e.store.CreateToken(e.ctx, e.newToken(org.ID, "canskan", e.now), 1)
	wantCode(t, "CreateToken(over the active-token limit)", err, keygate.ECONFLICT)
	equal(t, "changes after failed mutations", w.sync(), []keygate.Change(nil))
}

func testChangesDeleteOrganization(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	t1 := e.createToken(org.ID, "cannmenus", e.now)
	t2 := e.createToken(org.ID, "canskan", e.now)
	revoked := e.createToken(org.ID, "cannmenus", e.now)
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, revoked.ID, e.now))

	w := e.watch(e.store, e.store)
	must(t, "DeleteOrganization", e.store.DeleteOrganization(e.ctx, org.ID))
	got := w.sync()
	// The order among one delete's changes is the store's choice.
	sort.Slice(got, func(i, j int) bool { return got[i].Kind+got[i].ID < got[j].Kind+got[j].ID })
	want := []keygate.Change{
		{Kind: keygate.ChangeOrganization, ID: org.ID},
		{Kind: keygate.ChangeToken, ID: t1.ID},
		{Kind: keygate.ChangeToken, ID: t2.ID},
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Kind+want[i].ID < want[j].Kind+want[j].ID })
	equal(t, "changes of DeleteOrganization", got, want)
}

func testChangesAcrossHandles(t *testing.T, e *env) {
	acme, globex := e.createOrganization("acme"), e.createOrganization("globex")
	tok := e.createToken(acme.ID, "cannmenus", e.now)
	other := e.open()

	w := e.watch(e.store, other)
	must(t, "RevokeToken through another handle", other.RevokeToken(e.ctx, tok.ID, e.now))
	acme.Entitlements.States = []string{"California"}
	must(t, "UpdateOrganization through another handle", other.UpdateOrganization(e.ctx, acme))
	must(t, "DeleteOrganization through another handle", other.DeleteOrganization(e.ctx, globex.ID))

	equal(t, "changes made through another handle", w.sync(), []keygate.Change{
		{Kind: keygate.ChangeToken, ID: tok.ID},
		{Kind: keygate.ChangeOrganization, ID: acme.ID},
		{Kind: keygate.ChangeOrganization, ID: globex.ID},
	})
}

// A watcher that stalls (a stopped process, say) while changes it has not
// delivered are pruned can never deliver them: WatchChanges returns
// ErrChangesPruned, and says nothing more of itself, so that a cache
// drops everything instead of trusting what it holds.
func testChangesPrunedUndelivered(t *testing.T, e *env) {
	pruner, ok := e.store.(interface {
		PruneChanges(ctx context.Context, cutoff time.Time) error
	})
	if !ok {
		t.Fatal("the store has no PruneChanges(ctx, cutoff), which its watchers use")
	}
	org := e.createOrganization("acme")
	first, pruned := e.createToken(org.ID, "cannmenus", e.now), e.createToken(org.ID, "cannmenus", e.now)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	began, stalled, resume := make(chan struct{}), make(chan keygate.Change, 1), make(chan struct{})
	var said []bool // written on WatchChanges' goroutine, read after it returned
	done := make(chan error, 1)
	go func() {
		done <- e.store.WatchChanges(ctx, func(following bool) {
			if said = append(said, following); len(said) == 1 {
				close(began)
			}
		}, func(c keygate.Change) {
			select {
			case stalled <- c:
				<-resume
			default: // only the first delivery stalls
			}
		})
	}()
	select {
	case <-began:
	case <-time.After(changeTimeout):
		t.Fatalf("WatchChanges did not call following(true) within %s", changeTimeout)
	}
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, first.ID, e.now))
	select {
	case c := <-stalled:
		equal(t, "the first change", keygate.Change{Kind: c.Kind, ID: c.ID}, keygate.Change{Kind: keygate.ChangeToken, ID: first.ID})
	case <-time.After(changeTimeout):
		t.Fatalf("the revocation did not arrive within %s", changeTimeout)
	}
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, pruned.ID, e.now))
	// A prune keeps the newest change: this one, not the revocation.
	e.createToken(org.ID, "cannmenus", e.now)
	must(t, "PruneChanges", pruner.PruneChanges(e.ctx, time.Now().Add(time.Hour)))
	close(resume)

	select {
	case err := <-done:
		if !errors.Is(err, keygate.ErrChangesPruned) {
			t.Fatalf("WatchChanges returned %v, want ErrChangesPruned", err)
		}
		if len(said) != 1 && (len(said) != 2 || said[1]) {
			t.Errorf("WatchChanges said following %v, want true and at most false after it", said)
		}
	case <-time.After(changeTimeout):
		t.Fatalf("WatchChanges did not return within %s of resuming after changes it had not delivered were pruned", changeTimeout)
	}
}

func testChangesStop(t *testing.T, e *env) {
	w := e.watch(e.store, e.store)
	w.stop()
}

// watch is one running WatchChanges call and what it delivered.
type watch struct {
	t       *testing.T
	e       *env
	changes chan keygate.Change
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once

	// Probes are revocations the suite makes to learn that the watch has
	// begun and to mark the end of a batch. probeVia is the handle they go
	// through; their tokens belong to probeOrg.
	probeVia keygate.Store
	probeOrg string
	probes   map[string]bool
	lastSeq  int64
}

// watch starts WatchChanges on s and returns once it delivers changes.
// Changes made before watch returns, other than probes, must not arrive.
func (e *env) watch(s, probeVia keygate.Store) *watch {
	e.t.Helper()
	probeOrg := &keygate.Organization{Slug: "probe-" + keygate.NewID("p")[2:10], Name: "Probe", Plan: "free", CreatedAt: e.now}
	must(e.t, "CreateOrganization(probe)", probeVia.CreateOrganization(e.ctx, probeOrg))

	ctx, cancel := context.WithCancel(e.ctx)
	w := &watch{
		t:        e.t,
		e:        e,
		changes:  make(chan keygate.Change, 1000),
		cancel:   cancel,
		done:     make(chan error, 1),
		probeVia: probeVia,
		probeOrg: probeOrg.ID,
		probes:   map[string]bool{},
	}
	go func() {
		w.done <- s.WatchChanges(ctx, nil, func(c keygate.Change) {
			select {
			case w.changes <- c:
			case <-ctx.Done():
			}
		})
	}()
	e.t.Cleanup(w.stop)
	w.waitUntilWatching()
	return w
}

// waitUntilWatching probes until a probe arrives: from then on, every
// change is delivered.
func (w *watch) waitUntilWatching() {
	w.t.Helper()
	deadline := time.After(changeTimeout)
	for {
		w.probe()
		select {
		case c := <-w.changes:
			w.checkSeq(c)
			if !w.probes[c.ID] {
				w.t.Fatalf("WatchChanges delivered %+v, committed before the call", c)
			}
			// Probes sent before this one may still arrive; sync skips them.
			w.sync()
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			w.t.Fatalf("WatchChanges delivered no change within %s", changeTimeout)
		}
	}
}

// probe revokes a fresh token through probeVia and returns its id.
func (w *watch) probe() string {
	w.t.Helper()
	tok := w.e.newToken(w.probeOrg, "probe", w.e.now)
	must(w.t, "CreateToken(probe)", w.probeVia.CreateToken(w.e.ctx, tok, 0))
	w.probes[tok.ID] = true
	must(w.t, "RevokeToken(probe)", w.probeVia.RevokeToken(w.e.ctx, tok.ID, w.e.now))
	return tok.ID
}

// sync makes a probe and returns every change other than probes delivered
// before it, with Seq cleared so tests compare kind and id.
func (w *watch) sync() []keygate.Change {
	w.t.Helper()
	marker := w.probe()
	deadline := time.After(changeTimeout)
	var got []keygate.Change
	for {
		select {
		case c := <-w.changes:
			w.checkSeq(c)
			if c.ID == marker {
				return got
			} else if !w.probes[c.ID] {
				c.Seq = 0
				got = append(got, c)
			}
		case <-deadline:
			w.t.Fatalf("WatchChanges did not deliver a change within %s; got %+v before it", changeTimeout, got)
		}
	}
}

// checkSeq fails the test unless changes arrive in increasing Seq order.
func (w *watch) checkSeq(c keygate.Change) {
	w.t.Helper()
	if c.Seq <= w.lastSeq {
		w.t.Errorf("change %+v arrived after seq %d: out of order", c, w.lastSeq)
	}
	w.lastSeq = c.Seq
}

// stop cancels the watch and checks that WatchChanges returns.
func (w *watch) stop() {
	w.stopped.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				w.t.Errorf("WatchChanges returned %v after its context ended, want nil", err)
			}
		case <-time.After(changeTimeout):
			w.t.Errorf("WatchChanges did not return within %s of its context ending", changeTimeout)
		}
	})
}
