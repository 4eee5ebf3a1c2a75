package webhook_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/webhook"
)

// claimCountingStore is a real store that counts the claims made through it.
type claimCountingStore struct {
	webhook.Store
	claims atomic.Int64
}

func (s *claimCountingStore) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*keygate.WebhookDelivery, error) {
	s.claims.Add(1)
	return s.Store.ClaimWebhookDeliveries(ctx, now, lease, limit)
}

// run starts d.Run until the test ends.
func run(t *testing.T, d *webhook.Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 10s for %s", what)
		}
	}
}

const testWorkers = 4

// An idle instance claims once per poll interval, not once per worker:
// one of the four workers polls while the others wait to be woken.
func TestIdleWorkersClaimOncePerPollInterval(t *testing.T) {
	f := newFixture(t)
	store := &claimCountingStore{Store: f.store}
	const poll = 50 * time.Millisecond
	d := f.dispatcher(store, func(o *webhook.Options) {
		o.Now, o.Concurrency, o.PollInterval, o.ScanInterval = time.Now, testWorkers, poll, time.Hour
	})
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	time.Sleep(time.Second)
	cancel()
	<-done
	idle := time.Since(began)
	claims := store.claims.Load()
	// Each worker claims once as it starts; after that one claim per
	// interval. A loaded machine makes fewer, never more.
	most := int64(testWorkers) + int64(idle/poll) + 1
	t.Logf("idle for %v with %d workers polling every %v: %d claims (at most %d)", idle.Round(time.Millisecond), testWorkers, poll, claims, most)
	if claims > most {
		t.Errorf("%d claims in %v idle, want at most %d: one per poll interval, whatever the workers", claims, idle.Round(time.Millisecond), most)
	}
	if claims <= testWorkers {
		t.Errorf("%d claims in %v idle: no worker polled", claims, idle.Round(time.Millisecond))
	}
}

// Emit wakes an idle worker: the delivery goes out at once, not at the
// next poll, an hour away.
func TestEmitWakesAnIdleWorker(t *testing.T) {
	f := newFixture(t)
	store := &claimCountingStore{Store: f.store}
	d := f.dispatcher(store, func(o *webhook.Options) {
		o.Now, o.Concurrency, o.PollInterval, o.ScanInterval = time.Now, testWorkers, time.Hour, time.Hour
	})
	r := newReceiver(t, time.Now)
	f.endpoint(r)
	run(t, d)
	waitFor(t, "the workers' first claims", func() bool { return store.claims.Load() >= testWorkers })
	if err := d.Emit(f.ctx, f.org.ID, keygate.EventTokenCreated, map[string]string{"id": "tok_1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery (the next poll is an hour away)", func() bool { return len(r.requests()) == 1 })
}

// concurrencyReceiver is an endpoint that holds each request until want
// requests are in flight at once (or 10 s pass), and records the most it
// saw at once.
type concurrencyReceiver struct {
	want     int
	mu       sync.Mutex
	inFlight int
	most     int
	answered int
	all      chan struct{}
}

func (c *concurrencyReceiver) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	c.inFlight++
	if c.inFlight > c.most {
		c.most = c.inFlight
		if c.most == c.want {
			close(c.all)
		}
	}
	c.mu.Unlock()
	select {
	case <-c.all:
	case <-time.After(10 * time.Second):
	}
	c.mu.Lock()
	c.inFlight--
	c.answered++
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *concurrencyReceiver) counts() (most, answered int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.most, c.answered
}

// A backlog queued by another instance, which wakes none of this one's
// workers, is found by the one polling worker, and every worker is then
// on it at once.
func TestBacklogFromAnotherInstanceIsSentByEveryWorker(t *testing.T) {
	f := newFixture(t)
	store := &claimCountingStore{Store: f.store}
	d := f.dispatcher(store, func(o *webhook.Options) {
		o.Now, o.Concurrency, o.PollInterval, o.ScanInterval = time.Now, testWorkers, 50*time.Millisecond, time.Hour
	})
	rec := &concurrencyReceiver{want: testWorkers, all: make(chan struct{})}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	r := &receiver{srv: srv}
	f.endpoint(r)
	run(t, d)
	waitFor(t, "the workers' first claims", func() bool { return store.claims.Load() >= testWorkers })

	other := f.dispatcher(f.open(), func(o *webhook.Options) { o.Now = time.Now })
	const backlog = 2 * testWorkers
	for range backlog {
		if err := other.Emit(f.ctx, f.org.ID, keygate.EventTokenCreated, map[string]string{"id": "tok_1"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the backlog to be sent", func() bool { _, answered := rec.counts(); return answered == backlog })
	if most, _ := rec.counts(); most != testWorkers {
		t.Errorf("at most %d deliveries were sent at once, want all %d workers on the backlog", most, testWorkers)
	}
}

// holdingReceiver is an endpoint that signals each request and answers it
// when released.
type holdingReceiver struct {
	got     chan struct{}
	release chan struct{}
}

func (h *holdingReceiver) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.got <- struct{}{}
	<-h.release
	w.WriteHeader(http.StatusNoContent)
}

// An attempt still waiting on a PostgreSQL that stopped answering when the
// shutdown's grace ends is cancelled, instead of holding the shutdown for
// its lease (Timeout + 1 min); the delivery stays claimed and is sent
// again once the lease ends.
func TestShutdownEndsAttemptsWithTheGraceWhenTheDatabaseStopsAnswering(t *testing.T) {
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)
	ctx := t.Context()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "pro", CreatedAt: time.Now().Add(-time.Hour)}
	if err := st.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	rec := &holdingReceiver{got: make(chan struct{}, 1), release: make(chan struct{})}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	hook, err := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: org.ID, URL: srv.URL}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateWebhook(ctx, hook, 0); err != nil {
		t.Fatal(err)
	}
	d := webhook.New(st, webhook.Options{AllowPrivateAddresses: true, Concurrency: 1, ScanInterval: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		d.Run(runCtx)
	}()
	if err := d.Emit(ctx, org.ID, keygate.EventTokenCreated, map[string]string{"id": "tok_1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rec.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery was not sent")
	}
	proxy.Blackhole() // the attempt's record waits on a silent database
	close(rec.release)

	const grace = 500 * time.Millisecond
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- d.Shutdown(graceCtx) }()
	select {
	case err := <-stopped:
		took := time.Since(began)
		t.Logf("database blackholed, grace %v: Shutdown returned %v after %v", grace, err, took.Round(time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the grace's deadline: an attempt was cut short", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Shutdown still waiting on a silent database 10s into a %v grace (the lease is %v)", grace, webhook.DefaultTimeout+time.Minute)
	}
	stopRun()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after Shutdown and its context ended")
	}

	proxy.Forward()
	del, err := st.ListWebhookDeliveries(ctx, keygate.WebhookDeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(del) != 1 || del[0].State != keygate.DeliveryPending || del[0].Attempts != 1 {
		t.Fatalf("after the shutdown: %d deliveries, want 1 pending after its first, unrecorded, attempt", len(del))
	}
	lease := webhook.DefaultTimeout + time.Minute
	if again, err := st.ClaimWebhookDeliveries(ctx, time.Now().Add(lease), lease, 10); err != nil || len(again) != 1 {
		t.Errorf("once the lease ends the delivery is claimed again: %d, %v; want 1", len(again), err)
	}
}
