package gateway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// touchCounter counts batch writes so the test can prove a busy token costs
// one write per flush, not one per request.
type touchCounter struct {
	*countingStore
	touches atomic.Int64
	fail    atomic.Bool
}

func (c *touchCounter) TouchTokens(ctx context.Context, m map[string]time.Time) error {
	c.touches.Add(1)
	if c.fail.Load() {
		return keygate.Errorf(keygate.EUNAVAILABLE, "database down")
	}
	return c.countingStore.TouchTokens(ctx, m)
}

func TestLastUsedIsBatchedAndSurvivesAFailedWrite(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	store := &touchCounter{countingStore: f.store}
	usage := gateway.NewUsage(store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour}) // flushed by hand below
	at := time.Date(2026, 11, 23, 10, 15, 42, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		status := 200
		if i%10 == 0 {
			status = 429
		} else if i%25 == 0 {
			status = 403
		}
		usage.Record(f.org.ID, tok.ID, status, at)
	}
	store.fail.Store(true)
	if err := usage.Flush(context.Background()); err == nil {
		t.Fatal("flush against a failing store reported success")
	}
	store.fail.Store(false)
	if err := usage.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := store.touches.Load(); n != 2 {
		t.Errorf("1000 requests caused %d last-used writes, want 2 (one failed, one retried)", n)
	}
	got, err := f.store.FindTokenByID(context.Background(), tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(at.Truncate(time.Minute)) {
		t.Errorf("last_used_at %v, want %v", got.LastUsedAt, at.Truncate(time.Minute))
	}
	counts, err := f.store.ListUsage(context.Background(), keygate.UsageQuery{OrganizationID: f.org.ID, From: at.Add(-time.Hour), To: at.Add(time.Hour)})
	if err != nil || len(counts) != 1 {
		t.Fatalf("usage rows %v %v", counts, err)
	}
	if c := counts[0]; c.Requests != 1000 || c.RateLimited != 100 || c.Errors != 20 {
		t.Errorf("usage %+v, want 1000 requests, 100 rate limited, 20 errors (nothing lost to the failed write)", c)
	}
}

// What this instance saw is readable before and after the batch is
// written, so pages can show a token used seconds ago.
func TestPendingLastUsed(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	usage := gateway.NewUsage(f.store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour})
	defer usage.Close(context.Background())
	if at, ok := usage.PendingLastUsed(tok.ID); ok {
		t.Fatalf("unused token pending %v", at)
	}
	at := time.Date(2026, 11, 23, 10, 15, 42, 0, time.UTC)
	usage.Record(f.org.ID, tok.ID, 200, at)
	if got, ok := usage.PendingLastUsed(tok.ID); !ok || !got.Equal(at.Truncate(time.Minute)) {
		t.Fatalf("pending %v %v, want %v", got, ok, at.Truncate(time.Minute))
	}
	if err := usage.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, ok := usage.PendingLastUsed(tok.ID); !ok || !got.Equal(at.Truncate(time.Minute)) {
		t.Fatalf("after the flush %v %v", got, ok)
	}
}

// Usage remembers which minute it wrote per token only while that minute
// lasts: a week of many tokens does not grow it.
func TestUsageForgetsWrittenMinutesOnceTheyPass(t *testing.T) {
	f := newFixture(t)
	usage := gateway.NewUsage(f.store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour}) // flushed by hand below
	defer usage.Close(context.Background())
	past := time.Now().Add(-2 * time.Minute)
	const tokens = 1000
	for i := range tokens {
		usage.Record(f.org.ID, fmt.Sprintf("tok_%d", i), 200, past)
	}
	if err := usage.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	usage.Record(f.org.ID, "tok_now", 200, time.Now())
	if err := usage.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	marks := gateway.WrittenMarks(usage)
	t.Logf("after a flush of %d tokens used minutes ago, then one of 1 token used now: %d written marks kept", tokens, marks)
	if marks > 1 {
		t.Errorf("%d written marks kept, want at most the 1 token of the current minute", marks)
	}
}

// commitThenTimeout writes each counts batch, then reports the first
// write failed, as a write whose commit beat its context's deadline does.
type commitThenTimeout struct {
	*countingStore
	failed atomic.Bool
}

func (c *commitThenTimeout) RecordUsage(ctx context.Context, batchID string, counts []keygate.UsageCount) error {
	if err := c.countingStore.RecordUsage(ctx, batchID, counts); err != nil {
		return err
	}
	if c.failed.CompareAndSwap(false, true) {
		return context.DeadlineExceeded
	}
	return nil
}

// A counts batch that was committed although its write reported a
// failure is tried again under the same id, and counted once.
func TestUsageRetryAfterACommittedWriteCountsOnce(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	store := &commitThenTimeout{countingStore: f.store}
	usage := gateway.NewUsage(store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour}) // flushed by hand below
	at := time.Now()
	for range 300 {
		usage.Record(f.org.ID, tok.ID, 200, at)
	}
	if err := usage.Flush(context.Background()); err == nil {
		t.Fatal("the first flush reported success; the store said it timed out")
	}
	for range 2 {
		usage.Record(f.org.ID, tok.ID, 200, at)
	}
	if n, failed := usage.Unwritten(), usage.WriteFailures(); n != 302 || failed != 1 {
		t.Errorf("after the failed write: %d requests unwritten and %d failures, want 302 and 1", n, failed)
	}
	if err := usage.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := usage.Unwritten(); n != 0 {
		t.Errorf("%d requests unwritten after Close", n)
	}
	counts, err := f.store.ListUsage(context.Background(), keygate.UsageQuery{OrganizationID: f.org.ID, From: at.Add(-time.Hour), To: at.Add(time.Hour)})
	if err != nil || len(counts) != 1 {
		t.Fatalf("usage rows %v %v", counts, err)
	}
	if counts[0].Requests != 302 {
		t.Errorf("%d requests recorded, want 302: the batch retried after its committed write counted again", counts[0].Requests)
	}
}

// countsWriteStarted tells when a counts write has reached the store.
type countsWriteStarted struct {
	*postgres.Store
	started chan struct{}
}

func (c *countsWriteStarted) RecordUsage(ctx context.Context, batchID string, counts []keygate.UsageCount) error {
	select {
	case c.started <- struct{}{}:
	default:
	}
	return c.Store.RecordUsage(ctx, batchID, counts)
}

// A periodic write waiting on a database that stopped answering ends with
// Close's context, not after its own timeout (5 s or the interval, an
// hour for some last-used settings): keygate's shutdown is bounded by its
// grace. What that write carried stays counted, unwritten.
func TestUsageCloseEndsAWriteInFlightWhenItsContextEnds(t *testing.T) {
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)
	store := &countsWriteStarted{Store: st, started: make(chan struct{}, 1)}
	usage := gateway.NewUsage(store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: 10 * time.Millisecond})
	proxy.Blackhole()
	defer proxy.Cut() // the store's own close need not wait on the silence
	usage.Record("org_1", "", 200, time.Now())
	select {
	case <-store.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the counts were not written within 10s at a 10ms interval")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := usage.Close(ctx)
	took := time.Since(began)
	t.Logf("database blackholed, a counts write in flight: Close with 100ms returned after %v (%v)", took.Round(time.Millisecond), err)
	if took > 2*time.Second {
		t.Errorf("Close took %v, want about its context's 100ms, not the write's own 5s", took.Round(time.Millisecond))
	}
	if err == nil {
		t.Error("Close on a silent database reported the counts written")
	}
	if n := usage.Unwritten(); n != 1 {
		t.Errorf("%d requests unwritten after the cut write, want 1", n)
	}
}
