package limitertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/keygate/keygate/ratelimit"
)

// arrivalPattern spreads requests over time: the gap before each request.
type arrivalPattern struct {
	name string
	gap  func(r *rand.Rand, limit int, period time.Duration) time.Duration
}

var arrivalPatterns = []arrivalPattern{
	// About twice the limit, evenly at random: the window is always full.
	{"steady overload", func(r *rand.Rand, limit int, period time.Duration) time.Duration {
		return time.Duration(r.Int64N(int64(period) / int64(limit)))
	}},
	// Bursts of up to two limits at one instant, then quiet for up to a
	// period: the boundaries of buckets and windows are crossed in every
	// phase.
	{"bursts", func(r *rand.Rand, limit int, period time.Duration) time.Duration {
		if r.IntN(2*limit) != 0 {
			return 0
		}
		return time.Duration(r.Int64N(int64(period)))
	}},
	// Exponential gaps around the limit's own rate, with nanosecond
	// offsets that rarely fall on a bucket edge.
	{"poisson at the limit", func(r *rand.Rand, limit int, period time.Duration) time.Duration {
		return time.Duration(r.ExpFloat64()*float64(period)/float64(limit)) + time.Duration(r.IntN(1000))
	}},
}

// testNeverOverInAnySpan sends random arrivals on a fake clock and checks
// every span of one period: none holds more than the limit of allowed
// requests. It also bounds under-admission (a refusal means the limit was
// reached within one period and one bucket) and logs the worst it saw.
func testNeverOverInAnySpan(t *testing.T, b Backend) {
	if b.NewAt == nil {
		t.Fatal("Backend.NewAt is not set: every backend runs the randomized arrival test")
	}
	const period = time.Minute
	slack := time.Duration(ratelimit.BucketWidth(int64(period))) + time.Microsecond
	for _, limit := range []int{1, 3, 10, 60, 500} {
		for pi, p := range arrivalPatterns {
			seed := uint64(limit)*31 + uint64(pi)
			t.Run(fmt.Sprintf("limit %d %s", limit, p.name), func(t *testing.T) {
				clock := NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
				l := b.NewAt(t, clock.Now)
				r := rand.New(rand.NewPCG(seed, 7))
				requests := min(20*limit, 1000) + 40
				var allowed, refused []time.Time
				for range requests {
					clock.Sleep(p.gap(r, limit, period))
					now := clock.Now()
					res, err := l.Allow(context.Background(), "tok:random", limit, period)
					if err != nil {
						t.Fatal(err)
					}
					if !res.Allowed {
						refused = append(refused, now)
						if !res.ResetAt.After(now) {
							t.Fatalf("refused at %s with ResetAt %s, not later", now, res.ResetAt)
						}
						continue
					}
					allowed = append(allowed, now)
					// Remaining never promises more than the window holds.
					if inWindow := countIn(allowed, now.Add(-period), now); res.Remaining > limit-inWindow {
						t.Fatalf("allowed at %s with Remaining %d, but %d of %d are in the window", now, res.Remaining, inWindow, limit)
					}
				}
				for _, at := range allowed {
					if n := countIn(allowed, at.Add(-period), at); n > limit {
						t.Fatalf("%d requests allowed in the period ending %s, limit %d (seed %d)", n, at, limit, seed)
					}
				}
				worst := 0
				for _, at := range refused {
					if n := countIn(allowed, at.Add(-period-slack), at); n < limit {
						t.Fatalf("refused at %s with only %d allowed in the period and one bucket before, limit %d (seed %d)", at, n, limit, seed)
					}
					worst = max(worst, limit-countIn(allowed, at.Add(-period), at))
				}
				exact := exactLogAllows(append(allowed, refused...), limit, period)
				t.Logf("limit %d/min, %s: %d requests, %d allowed (an exact log: %d, %.1f%%); worst refusal had %d of %d free in its exact window",
					limit, p.name, requests, len(allowed), exact, 100*float64(len(allowed))/float64(exact), worst, limit)
			})
		}
	}
}

// exactLogAllows is how many of the arrivals an exact sliding-window log
// (the tightest limiter that is never over) would allow.
func exactLogAllows(arrivals []time.Time, limit int, period time.Duration) int {
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	var log []time.Time
	for _, at := range arrivals {
		if countIn(log, at.Add(-period), at) < limit {
			log = append(log, at)
		}
	}
	return len(log)
}

// countIn counts the sorted times in (from, to].
func countIn(times []time.Time, from, to time.Time) int {
	lo := sort.Search(len(times), func(i int) bool { return times[i].After(from) })
	hi := sort.Search(len(times), func(i int) bool { return times[i].After(to) })
	return hi - lo
}
