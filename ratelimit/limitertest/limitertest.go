// Package limitertest is the contract every ratelimit.Limiter must meet,
// run by each backend's tests against a real backend.
package limitertest

import (
	"context"
	"fmt"
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

// A test on the wall clock can assert only what its timing allows: a
// request meant to meet another in the window has to reach the limiter
// before that one leaves, which a loaded machine (a goroutine not
// scheduled for a while, a slow round trip) may miss. So each such step
// names its deadline. A step whose outcome is wrong fails the test if it
// was answered before its deadline, exactly as without one; answered
// after, the limiter may have decided after the window moved, so the
// attempt proves nothing and runs again on a fresh limiter, up to
// attempts times. On a FakeClock time moves only by Sleep and no deadline
// is missed.
const attempts = 3

// never is the deadline of a step whose outcome does not depend on time.
var never time.Time

// scene is one attempt of a timed test: its limiter and clock, and
// whether the last step ended past its deadline.
type scene struct {
	t    *testing.T
	b    Backend
	l    ratelimit.Limiter
	c    Clock
	late *tooSlow
}

// tooSlow is why an attempt was given up: a step whose outcome was wrong
// ended late past its deadline.
type tooSlow struct {
	step string
	late time.Duration
}

// timed runs scenario on a fresh limiter until an attempt keeps to its
// deadlines, and fails when none of attempts did.
func timed(t *testing.T, b Backend, scenario func(s *scene)) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		l, c := b.New(t)
		slow, ok := play(&scene{t: t, b: b, l: l, c: c}, scenario)
		if ok {
			return
		}
		if attempt == attempts {
			t.Fatalf("%d attempts each took too long to assert anything; the last: %s ended %s past its deadline",
				attempts, slow.step, slow.late)
		}
		t.Logf("attempt %d: %s ended %s past its deadline; trying again on a fresh limiter", attempt, slow.step, slow.late)
	}
}

// play runs one attempt; ok is false when a step missed its deadline.
func play(s *scene, scenario func(s *scene)) (slow tooSlow, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if slow, ok = r.(tooSlow); !ok {
				panic(r)
			}
			ok = false
		}
	}()
	scenario(s)
	return tooSlow{}, true
}

// counted is the deadline for a request to meet, in the window, one sent
// at or after at: its period less the tolerance between the clocks.
func (s *scene) counted(at time.Time) time.Time {
	return at.Add(s.b.Period - s.b.Tolerance)
}

// ended records whether the step just done ended before deadline (a zero
// deadline is always met).
func (s *scene) ended(deadline time.Time, step string) {
	s.late = nil
	if now := s.c.Now(); !deadline.IsZero() && !now.Before(deadline) {
		s.late = &tooSlow{step: step, late: now.Sub(deadline)}
	}
}

// fatalf fails the test over the outcome of the last step, unless that
// step ended past its deadline: then the attempt is given up.
func (s *scene) fatalf(format string, args ...any) {
	s.t.Helper()
	if s.late != nil {
		panic(*s.late)
	}
	s.t.Fatalf(format, args...)
}

// one sends one request, due by deadline.
func (s *scene) one(key string, limit int, deadline time.Time) ratelimit.Result {
	s.t.Helper()
	res := allow(s.t, s.l, key, limit, s.b.Period)
	s.ended(deadline, fmt.Sprintf("a request on %q", key))
	return res
}

// allow asserts n requests in a row pass, each due by deadline.
func (s *scene) allow(key string, limit, n int, deadline time.Time) {
	s.t.Helper()
	for i := range n {
		if res := s.one(key, limit, deadline); !res.Allowed {
			s.fatalf("request %d of %d on %q refused, want allowed (%+v)", i+1, n, key, res)
		}
	}
}

// refuse asserts n requests in a row are refused, each due by deadline.
func (s *scene) refuse(key string, limit, n int, deadline time.Time) {
	s.t.Helper()
	for i := range n {
		res := s.one(key, limit, deadline)
		if res.Allowed {
			s.fatalf("request %d of %d on %q allowed, want refused (%+v)", i+1, n, key, res)
		}
		if res.Remaining != 0 {
			s.fatalf("refused request on %q: Remaining = %d, want 0", key, res.Remaining)
		}
	}
}

func testAllowsExactlyLimit(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		first := s.c.Now()
		s.allow("ip:192.0.2.1", 5, 5, s.counted(first))
		s.refuse("ip:192.0.2.1", 5, 3, s.counted(first))
	})
}

func testRemainingCountsDown(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		first := s.c.Now()
		for want := 9; want >= 0; want-- {
			res := s.one("ip:192.0.2.1", 10, s.counted(first))
			if !res.Allowed || res.Remaining != want {
				s.fatalf("got Allowed=%v Remaining=%d, want true %d", res.Allowed, res.Remaining, want)
			}
		}
		res := s.one("ip:192.0.2.1", 10, s.counted(first))
		if res.Allowed || res.Remaining != 0 || res.RetryAfter <= 0 {
			s.fatalf("11th request: %+v, want refused with Remaining 0 and a RetryAfter", res)
		}
	})
}

func testResetAtAndRetryAfter(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		before := s.c.Now()
		first := s.one("tok:1", 3, never)
		after := s.c.Now()
		within(s.fatalf, "first request's ResetAt", first.ResetAt, before.Add(b.Period), after.Add(b.Period+b.slack()), b.Tolerance)
		// ResetIn counts to ResetAt from the decision, on the same clock.
		within(s.fatalf, "first request's ResetAt less its ResetIn", first.ResetAt.Add(-first.ResetIn), before, after, b.Tolerance)

		// Later requests do not move ResetAt: the window frees a request
		// when the oldest one leaves it.
		s.c.Sleep(b.Period / 4)
		for range 2 {
			if res := s.one("tok:1", 3, s.counted(before)); !res.ResetAt.Equal(first.ResetAt) {
				s.fatalf("ResetAt moved from %s to %s", first.ResetAt, res.ResetAt)
			}
		}

		now := s.c.Now()
		refused := s.one("tok:1", 3, s.counted(before))
		if refused.Allowed {
			s.fatalf("4th request of 3 allowed")
		}
		within(s.fatalf, "refusal's ResetAt less its ResetIn", refused.ResetAt.Add(-refused.ResetIn), now, s.c.Now(), b.Tolerance)
		if !refused.ResetAt.Equal(first.ResetAt) {
			s.fatalf("refusal ResetAt = %s, want the oldest request's %s", refused.ResetAt, first.ResetAt)
		}
		if refused.RetryAfter%time.Second != 0 || refused.RetryAfter < time.Second {
			s.fatalf("RetryAfter = %s, want whole seconds, at least 1", refused.RetryAfter)
		}
		wait := refused.ResetAt.Sub(now)
		if refused.RetryAfter < wait-b.Tolerance || refused.RetryAfter >= wait+time.Second+b.Tolerance {
			s.fatalf("RetryAfter = %s, want %s rounded up to seconds", refused.RetryAfter, wait)
		}
	})
}

func testWindowFreesARequestAtResetAt(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		first := s.c.Now()
		s.allow("tok:1", 2, 1, never)
		s.c.Sleep(b.Period / 4)
		second := s.c.Now()
		s.allow("tok:1", 2, 1, never)
		refused := s.one("tok:1", 2, s.counted(first))
		if refused.Allowed {
			s.fatalf("3rd request of 2 allowed")
		}
		sleepUntil(s.c, refused.ResetAt.Add(-max(b.Tolerance, time.Nanosecond)))
		// Answered before ResetAt, the oldest request still counts.
		s.refuse("tok:1", 2, 1, refused.ResetAt)
		// The oldest request leaves; the one a quarter period younger stays.
		sleepUntil(s.c, refused.ResetAt.Add(b.Tolerance))
		s.allow("tok:1", 2, 1, never)
		s.refuse("tok:1", 2, 1, s.counted(second))
	})
}

// testSlidingWindow tells a sliding window from a fixed window (which
// would let a full limit through again after a boundary) and from a GCRA
// with a burst of limit (which would regain half the limit in half a
// period on top of what is left).
func testSlidingWindow(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		key := "ip:2001:db8::1"
		first := s.c.Now()
		s.allow(key, 4, 2, never)
		s.c.Sleep(b.Period / 2)
		half := s.c.Now()
		s.allow(key, 4, 2, never)
		s.refuse(key, 4, 1, s.counted(first))

		// The first two leave the window (a bucket late at most); the two
		// from half a period ago stay.
		s.c.Sleep(b.Period/2 + b.slack() + b.Tolerance)
		s.allow(key, 4, 2, never)
		s.refuse(key, 4, 1, s.counted(half))
	})
}

func testRejectedRequestsDoNotConsume(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		first := s.c.Now()
		s.allow("ip:192.0.2.1", 2, 2, never)
		s.c.Sleep(b.Period / 2)
		s.refuse("ip:192.0.2.1", 2, 20, s.counted(first))
		// The refusals half a period ago must not keep the client out.
		s.c.Sleep(b.Period/2 + b.slack() + b.Tolerance)
		s.allow("ip:192.0.2.1", 2, 2, never)
		s.refuse("ip:192.0.2.1", 2, 1, never)
	})
}

func testKeysAreIndependent(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		first := s.c.Now()
		s.allow("ip:192.0.2.1", 2, 2, never)
		s.refuse("ip:192.0.2.1", 2, 1, s.counted(first))
		for _, key := range []string{"ip:192.0.2.2", "tok:192.0.2.1", "org:ünïcode key with spaces"} {
			if res := s.one(key, 2, never); !res.Allowed || res.Remaining != 1 {
				s.fatalf("first request on %q: %+v, want allowed with Remaining 1", key, res)
			}
		}
		s.refuse("ip:192.0.2.1", 2, 1, s.counted(first))
	})
}

// testLimitChangedForAKey covers an organization changing plans: the
// requests already allowed count against the new limit.
func testLimitChangedForAKey(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		key := "org:acme"
		first := s.c.Now()
		s.allow(key, 5, 1, never)
		s.c.Sleep(b.Period / 10)
		before := s.c.Now()
		s.allow(key, 5, 1, never)
		after := s.c.Now()
		s.c.Sleep(b.Period / 10)
		s.allow(key, 5, 1, never)

		// Three in the window, limit now 2: refused until the second
		// oldest leaves and only one is left.
		res := s.one(key, 2, s.counted(before))
		if res.Allowed {
			s.fatalf("request over a lowered limit allowed: %+v", res)
		}
		within(s.fatalf, "ResetAt after lowering the limit", res.ResetAt, before.Add(b.Period), after.Add(b.Period+b.slack()), b.Tolerance)

		if res := s.one(key, 10, s.counted(first)); !res.Allowed || res.Remaining != 6 {
			s.fatalf("after raising the limit to 10: %+v, want allowed with Remaining 6", res)
		}
	})
}

func testConcurrent(t *testing.T, b Backend) {
	timed(t, b, func(s *scene) {
		const limit, workers, each = 37, 50, 8
		var (
			mu        sync.Mutex
			remaining = map[int]int{}
			errs      []error
			wg        sync.WaitGroup
		)
		first := s.c.Now()
		for range workers {
			wg.Go(func() {
				for range each {
					res, err := s.l.Allow(context.Background(), "tok:busy", limit, b.Period)
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
		// Every request within one period of the first: one window.
		s.ended(s.counted(first), "the concurrent requests")
		allowed := 0
		for _, n := range remaining {
			allowed += n
		}
		if allowed != limit {
			s.fatalf("%d goroutines: allowed %d of %d attempts, want exactly %d", workers, allowed, workers*each, limit)
		}
		// Each allowed request saw its own place in the window.
		for r := range limit {
			if remaining[r] != 1 {
				s.fatalf("Remaining %d reported %d times, want once (%v)", r, remaining[r], remaining)
			}
		}
	})
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

func within(fatalf func(string, ...any), what string, got, lo, hi time.Time, tolerance time.Duration) {
	if got.Before(lo.Add(-tolerance)) || got.After(hi.Add(tolerance)) {
		fatalf("%s = %s, want between %s and %s (±%s)", what, got.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano), tolerance)
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
