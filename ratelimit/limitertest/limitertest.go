// Package limitertest is the contract every ratelimit.Limiter must meet,
// run by each backend's tests against a real backend.
package limitertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/ratelimit"
)

// Clock is the time a backend's limiter reads: a FakeClock for the memory
// limiter, the real time for a server.
type Clock interface {
	Now() time.Time
	Sleep(d time.Duration)
}

// Backend describes the limiter under test.
type Backend struct {
	// New returns a limiter whose keys no other test sees, and its clock.
	New func(t *testing.T) (ratelimit.Limiter, Clock)
	// Period is the window the suite limits over: a minute on a fake
	// clock, a second against a server in real time.
	Period time.Duration
	// Tolerance is how far the limiter's clock may be from the suite's
	// readings of Clock (0 for a FakeClock).
	Tolerance time.Duration
	// NewAt returns a limiter whose keys no other test sees, reading the
	// time from now: the randomized arrival test drives it with a fake
	// clock on every backend.
	NewAt func(t *testing.T, now func() time.Time) ratelimit.Limiter
}

// slack is how much longer than its period a request may be counted: one
// bucket of the limiter's sliding window of counters.
func (b Backend) slack() time.Duration {
	return time.Duration(ratelimit.BucketWidth(int64(b.Period))) + time.Microsecond
}

// Run runs the contract against b.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"AllowsExactlyLimit", testAllowsExactlyLimit},
		{"RemainingCountsDown", testRemainingCountsDown},
		{"ResetAtAndRetryAfter", testResetAtAndRetryAfter},
		{"WindowFreesARequestAtResetAt", testWindowFreesARequestAtResetAt},
		{"SlidingWindow", testSlidingWindow},
		{"RejectedRequestsDoNotConsume", testRejectedRequestsDoNotConsume},
		{"KeysAreIndependent", testKeysAreIndependent},
		{"LimitChangedForAKey", testLimitChangedForAKey},
		{"ConcurrentRequestsAllowExactlyLimit", testConcurrent},
		{"InvalidLimit", testInvalidLimit},
		{"NeverOverInAnySpan", testNeverOverInAnySpan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each test has its own limiter; against a server in real
			// time, running them side by side keeps the suite short.
			t.Parallel()
			tt.run(t, b)
		})
	}
}

func allow(t *testing.T, l ratelimit.Limiter, key string, limit int, period time.Duration) ratelimit.Result {
	t.Helper()
	res, err := l.Allow(context.Background(), key, limit, period)
	if err != nil {
		t.Fatalf("Allow(%q, %d, %s): %v", key, limit, period, err)
	}
	if res.Limit != limit {
		t.Fatalf("Allow(%q): Limit = %d, want %d", key, res.Limit, limit)
	}
	if res.Allowed && res.RetryAfter != 0 {
		t.Fatalf("Allow(%q): allowed with RetryAfter %s, want 0", key, res.RetryAfter)
	}
	return res
}

// mustAllow asserts n requests in a row pass.
func mustAllow(t *testing.T, l ratelimit.Limiter, key string, limit, n int, period time.Duration) {
	t.Helper()
	for i := range n {
		if res := allow(t, l, key, limit, period); !res.Allowed {
			t.Fatalf("request %d of %d on %q refused, want allowed (%+v)", i+1, n, key, res)
		}
	}
}

// mustRefuse asserts n requests in a row are refused.
func mustRefuse(t *testing.T, l ratelimit.Limiter, key string, limit, n int, period time.Duration) {
	t.Helper()
	for i := range n {
		res := allow(t, l, key, limit, period)
		if res.Allowed {
			t.Fatalf("request %d of %d on %q allowed, want refused (%+v)", i+1, n, key, res)
		}
		if res.Remaining != 0 {
			t.Fatalf("refused request on %q: Remaining = %d, want 0", key, res.Remaining)
		}
	}
}

func testAllowsExactlyLimit(t *testing.T, b Backend) {
	l, _ := b.New(t)
	mustAllow(t, l, "ip:192.0.2.1", 5, 5, b.Period)
	mustRefuse(t, l, "ip:192.0.2.1", 5, 3, b.Period)
}

func testRemainingCountsDown(t *testing.T, b Backend) {
	l, _ := b.New(t)
	for want := 9; want >= 0; want-- {
		res := allow(t, l, "ip:192.0.2.1", 10, b.Period)
		if !res.Allowed || res.Remaining != want {
			t.Fatalf("got Allowed=%v Remaining=%d, want true %d", res.Allowed, res.Remaining, want)
		}
	}
	res := allow(t, l, "ip:192.0.2.1", 10, b.Period)
	if res.Allowed || res.Remaining != 0 || res.RetryAfter <= 0 {
		t.Fatalf("11th request: %+v, want refused with Remaining 0 and a RetryAfter", res)
	}
}

func testResetAtAndRetryAfter(t *testing.T, b Backend) {
	l, c := b.New(t)
	before := c.Now()
	first := allow(t, l, "tok:1", 3, b.Period)
	after := c.Now()
	within(t, "first request's ResetAt", first.ResetAt, before.Add(b.Period), after.Add(b.Period+b.slack()), b.Tolerance)

	// Later requests do not move ResetAt: the window frees a request when
	// the oldest one leaves it.
	c.Sleep(b.Period / 4)
	for range 2 {
		if res := allow(t, l, "tok:1", 3, b.Period); !res.ResetAt.Equal(first.ResetAt) {
			t.Fatalf("ResetAt moved from %s to %s", first.ResetAt, res.ResetAt)
		}
	}

	now := c.Now()
	refused := allow(t, l, "tok:1", 3, b.Period)
	if refused.Allowed {
		t.Fatal("4th request of 3 allowed")
	}
	if !refused.ResetAt.Equal(first.ResetAt) {
		t.Fatalf("refusal ResetAt = %s, want the oldest request's %s", refused.ResetAt, first.ResetAt)
	}
	if refused.RetryAfter%time.Second != 0 || refused.RetryAfter < time.Second {
		t.Fatalf("RetryAfter = %s, want whole seconds, at least 1", refused.RetryAfter)
	}
	wait := refused.ResetAt.Sub(now)
	if refused.RetryAfter < wait-b.Tolerance || refused.RetryAfter >= wait+time.Second+b.Tolerance {
		t.Fatalf("RetryAfter = %s, want %s rounded up to seconds", refused.RetryAfter, wait)
	}
}

func testWindowFreesARequestAtResetAt(t *testing.T, b Backend) {
	l, c := b.New(t)
	mustAllow(t, l, "tok:1", 2, 1, b.Period)
	c.Sleep(b.Period / 4)
	mustAllow(t, l, "tok:1", 2, 1, b.Period)
	refused := allow(t, l, "tok:1", 2, b.Period)
	if refused.Allowed {
		t.Fatal("3rd request of 2 allowed")
	}
	sleepUntil(c, refused.ResetAt.Add(-max(b.Tolerance, time.Nanosecond)))
	mustRefuse(t, l, "tok:1", 2, 1, b.Period)
	// The oldest request leaves; the one a quarter period younger stays.
	sleepUntil(c, refused.ResetAt.Add(b.Tolerance))
	mustAllow(t, l, "tok:1", 2, 1, b.Period)
	mustRefuse(t, l, "tok:1", 2, 1, b.Period)
}

// testSlidingWindow tells a sliding window from a fixed window (which
// would let a full limit through again after a boundary) and from a GCRA
// with a burst of limit (which would regain half the limit in half a
// period on top of what is left).
func testSlidingWindow(t *testing.T, b Backend) {
	l, c := b.New(t)
	key := "ip:2001:db8::1"
	mustAllow(t, l, key, 4, 2, b.Period)
	c.Sleep(b.Period / 2)
	mustAllow(t, l, key, 4, 2, b.Period)
	mustRefuse(t, l, key, 4, 1, b.Period)

	// The first two leave the window (a bucket late at most); the two
	// from half a period ago stay.
	c.Sleep(b.Period/2 + b.slack() + b.Tolerance)
	mustAllow(t, l, key, 4, 2, b.Period)
	mustRefuse(t, l, key, 4, 1, b.Period)
}

func testRejectedRequestsDoNotConsume(t *testing.T, b Backend) {
	l, c := b.New(t)
	mustAllow(t, l, "ip:192.0.2.1", 2, 2, b.Period)
	c.Sleep(b.Period / 2)
	mustRefuse(t, l, "ip:192.0.2.1", 2, 20, b.Period)
	// The refusals half a period ago must not keep the client out.
	c.Sleep(b.Period/2 + b.slack() + b.Tolerance)
	mustAllow(t, l, "ip:192.0.2.1", 2, 2, b.Period)
	mustRefuse(t, l, "ip:192.0.2.1", 2, 1, b.Period)
}

func testKeysAreIndependent(t *testing.T, b Backend) {
	l, _ := b.New(t)
	mustAllow(t, l, "ip:192.0.2.1", 2, 2, b.Period)
	mustRefuse(t, l, "ip:192.0.2.1", 2, 1, b.Period)
	for _, key := range []string{"ip:192.0.2.2", "tok:192.0.2.1", "org:ünïcode key with spaces"} {
		if res := allow(t, l, key, 2, b.Period); !res.Allowed || res.Remaining != 1 {
			t.Fatalf("first request on %q: %+v, want allowed with Remaining 1", key, res)
		}
	}
	mustRefuse(t, l, "ip:192.0.2.1", 2, 1, b.Period)
}

// testLimitChangedForAKey covers an organization changing plans: the
// requests already allowed count against the new limit.
func testLimitChangedForAKey(t *testing.T, b Backend) {
	l, c := b.New(t)
	key := "org:acme"
	mustAllow(t, l, key, 5, 1, b.Period)
	c.Sleep(b.Period / 10)
	before := c.Now()
	mustAllow(t, l, key, 5, 1, b.Period)
	after := c.Now()
	c.Sleep(b.Period / 10)
	mustAllow(t, l, key, 5, 1, b.Period)

	// Three in the window, limit now 2: refused until the second oldest
	// leaves and only one is left.
	res := allow(t, l, key, 2, b.Period)
	if res.Allowed {
		t.Fatalf("request over a lowered limit allowed: %+v", res)
	}
	within(t, "ResetAt after lowering the limit", res.ResetAt, before.Add(b.Period), after.Add(b.Period+b.slack()), b.Tolerance)

	if res := allow(t, l, key, 10, b.Period); !res.Allowed || res.Remaining != 6 {
		t.Fatalf("after raising the limit to 10: %+v, want allowed with Remaining 6", res)
	}
}

func testConcurrent(t *testing.T, b Backend) {
	l, _ := b.New(t)
	const limit, workers, each = 37, 50, 8
	var (
		mu        sync.Mutex
		remaining = map[int]int{}
		errs      []error
		wg        sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range each {
				res, err := l.Allow(context.Background(), "tok:busy", limit, b.Period)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if res.Allowed {
					remaining[res.Remaining]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	allowed := 0
	for _, n := range remaining {
		allowed += n
	}
	if allowed != limit {
		t.Fatalf("%d goroutines: allowed %d of %d attempts, want exactly %d", workers, allowed, workers*each, limit)
	}
	// Each allowed request saw its own place in the window.
	for r := range limit {
		if remaining[r] != 1 {
			t.Fatalf("Remaining %d reported %d times, want once (%v)", r, remaining[r], remaining)
		}
	}
}

func testInvalidLimit(t *testing.T, b Backend) {
	l, _ := b.New(t)
	for _, tt := range []struct {
		limit  int
		period time.Duration
	}{{0, b.Period}, {-1, b.Period}, {1, 0}, {1, -time.Second}, {1, ratelimit.MinPeriod - 1}} {
		_, err := l.Allow(context.Background(), "ip:192.0.2.1", tt.limit, tt.period)
		if keygate.ErrorCode(err) != keygate.EINVALID {
			t.Errorf("Allow(limit %d, period %s): error %v, want code %s", tt.limit, tt.period, err, keygate.EINVALID)
		}
	}
}

func within(t *testing.T, what string, got, lo, hi time.Time, tolerance time.Duration) {
	t.Helper()
	if got.Before(lo.Add(-tolerance)) || got.After(hi.Add(tolerance)) {
		t.Fatalf("%s = %s, want between %s and %s (±%s)", what, got.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano), tolerance)
	}
}

func sleepUntil(c Clock, at time.Time) {
	if d := at.Sub(c.Now()); d > 0 {
		c.Sleep(d)
	}
}

// FakeClock is a Clock that moves only when told to.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves the clock forward by d at once.
func (c *FakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// RealClock is the wall clock, for limiters backed by a server.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep sleeps.
func (RealClock) Sleep(d time.Duration) { time.Sleep(d) }
