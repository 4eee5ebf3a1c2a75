package redislimit_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/limitertest"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// scriptCounter reads how many window scripts a Redis ran. It runs its
// own redis-server: INFO commandstats counts every client's commands, and
// the Redis at KEYGATE_TEST_REDIS_URL serves other tests at the same time.
type scriptCounter struct {
	t      testing.TB
	client *redis.Client
}

// newScriptCounter starts a redis-server, returns a client of it and a
// counter of the scripts it runs from now on.
func newScriptCounter(t testing.TB) (*redis.Client, *scriptCounter) {
	server := startRedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: server.addr()})
	t.Cleanup(func() { client.Close() })
	if err := client.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return client, &scriptCounter{t: t, client: client}
}

// scripts returns the EVALSHA and EVAL calls Redis has run.
func (c *scriptCounter) scripts() int64 {
	c.t.Helper()
	text, err := c.client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	var n int64
	for line := range strings.SplitSeq(text, "\r\n") {
		name, stats, _ := strings.Cut(line, ":")
		if name != "cmdstat_evalsha" && name != "cmdstat_eval" {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			if calls, ok := strings.CutPrefix(field, "calls="); ok {
				v, err := strconv.ParseInt(calls, 10, 64)
				if err != nil {
					c.t.Fatalf("%s: %v", line, err)
				}
				n += v
			}
		}
	}
	return n
}

// memoStart is a time in whole microseconds, the script's resolution, so
// that the fake clock's readings are exactly what the script is given.
var memoStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestRedisRefusalRememberedUntilResetAt hammers a full window: after the
// first refusal Redis runs no script for the key until ResetAt, the
// refusals answered meanwhile are Redis's own (same Limit and ResetAt,
// Retry-After counted down), and at ResetAt the next request reaches Redis
// and passes.
func TestRedisRefusalRememberedUntilResetAt(t *testing.T) {
	client, counter := newScriptCounter(t)
	clock := limitertest.NewFakeClock(memoStart)
	l := redislimit.New(client, redislimit.Options{Now: clock.Now})
	ctx := context.Background()
	const key, limit, period = "tok:runaway", 3, time.Minute

	// One request, then the two others ten seconds later: at ResetAt the
	// first leaves the window and the others stay.
	for i := range limit {
		if i == 1 {
			clock.Sleep(10 * time.Second)
		}
		if res, err := l.Allow(ctx, key, limit, period); err != nil || !res.Allowed {
			t.Fatalf("request %d of %d: %+v, %v; want allowed", i+1, limit, res, err)
		}
	}
	first, err := l.Allow(ctx, key, limit, period)
	if err != nil || first.Allowed {
		t.Fatalf("request %d of %d: %+v, %v; want refused", limit+1, limit, first, err)
	}
	before := counter.scripts()

	// A thousand requests spread over the rest of the wait, the last one
	// microsecond before ResetAt.
	const hammered = 1000
	step := (first.ResetAt.Sub(clock.Now()) - time.Microsecond) / hammered
	for i := range hammered {
		clock.Sleep(step)
		if i == hammered-1 {
			clock.Sleep(first.ResetAt.Sub(clock.Now()) - time.Microsecond)
		}
		now := clock.Now()
		res, err := l.Allow(ctx, key, limit, period)
		// The limiter reads its clock in whole microseconds.
		wait := first.ResetAt.Sub(now.Truncate(time.Microsecond))
		want := ratelimit.Result{Limit: limit, ResetAt: first.ResetAt, ResetIn: wait, RetryAfter: ratelimit.RetryAfter(wait), Remembered: true}
		if err != nil || res != want {
			t.Fatalf("request at %s, %s before ResetAt: %+v, %v; want %+v", now, first.ResetAt.Sub(now), res, err, want)
		}
	}
	if got := counter.scripts() - before; got != 0 {
		t.Fatalf("Redis ran %d scripts for the %d refusals before ResetAt, want none", got, hammered)
	}

	clock.Sleep(first.ResetAt.Sub(clock.Now()))
	res, err := l.Allow(ctx, key, limit, period)
	if err != nil || !res.Allowed || res.Remaining != 0 {
		t.Fatalf("request at ResetAt: %+v, %v; want allowed by Redis with Remaining 0", res, err)
	}
	if got := counter.scripts() - before; got != 1 {
		t.Fatalf("Redis ran %d scripts for the request at ResetAt, want 1", got)
	}
}

// TestRedisRefusalNotAnsweredUnderAnotherLimit: a refusal remembered under
// one limit and period answers neither another limit (an organization
// that has just upgraded its plan is let in at once) nor another period;
// each reaches Redis. The refusal under the first limit is still
// remembered.
func TestRedisRefusalNotAnsweredUnderAnotherLimit(t *testing.T) {
	client, counter := newScriptCounter(t)
	clock := limitertest.NewFakeClock(memoStart)
	l := redislimit.New(client, redislimit.Options{Now: clock.Now})
	ctx := context.Background()
	const key, period = "org:acme", time.Minute

	allow := func(limit int, period time.Duration) ratelimit.Result {
		t.Helper()
		res, err := l.Allow(ctx, key, limit, period)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	allow(2, period)
	allow(2, period)
	if res := allow(2, period); res.Allowed {
		t.Fatalf("3rd request of 2: %+v, want refused", res)
	}
	before := counter.scripts()

	if res := allow(5, period); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("after raising the limit to 5: %+v, want allowed by Redis with Remaining 2", res)
	}
	if got := counter.scripts() - before; got != 1 {
		t.Fatalf("the request under the raised limit ran %d scripts, want 1", got)
	}

	// A period 60 times longer: its buckets hold every counted request.
	if res := allow(3, 60*period); res.Allowed {
		t.Fatalf("4th request of 3 an hour: %+v, want refused", res)
	}
	if got := counter.scripts() - before; got != 2 {
		t.Fatalf("the request under another period ran %d scripts, want 1", got-1)
	}

	// Each refusal is remembered under its own limit and period.
	before = counter.scripts()
	if res := allow(2, period); res.Allowed {
		t.Fatalf("over the limit: %+v", res)
	}
	if res := allow(3, 60*period); res.Allowed {
		t.Fatalf("over the limit: %+v", res)
	}
	if got := counter.scripts() - before; got != 0 {
		t.Fatalf("two remembered refusals ran %d scripts, want none", got)
	}
}

// TestRedisFlushedWindowStaysRefusedUntilResetAt: an operator who empties
// Redis does not let a remembered refusal in early; the key's next request
// after ResetAt finds the empty window.
func TestRedisFlushedWindowStaysRefusedUntilResetAt(t *testing.T) {
	client, counter := newScriptCounter(t)
	clock := limitertest.NewFakeClock(memoStart)
	l := redislimit.New(client, redislimit.Options{Now: clock.Now})
	ctx := context.Background()
	const key, limit, period = "ip:192.0.2.1", 1, time.Minute

	l.Allow(ctx, key, limit, period)
	refused, err := l.Allow(ctx, key, limit, period)
	if err != nil || refused.Allowed {
		t.Fatalf("2nd request of 1: %+v, %v; want refused", refused, err)
	}
	if err := client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := counter.scripts()
	clock.Sleep(refused.ResetAt.Sub(clock.Now()) - time.Microsecond)
	if res, err := l.Allow(ctx, key, limit, period); err != nil || res.Allowed || !res.ResetAt.Equal(refused.ResetAt) {
		t.Fatalf("a microsecond before ResetAt, Redis flushed: %+v, %v; want the remembered refusal", res, err)
	}
	if got := counter.scripts() - before; got != 0 {
		t.Fatalf("the remembered refusal ran %d scripts, want none", got)
	}
	clock.Sleep(time.Microsecond)
	if res, err := l.Allow(ctx, key, limit, period); err != nil || !res.Allowed {
		t.Fatalf("at ResetAt: %+v, %v; want allowed", res, err)
	}
}

// TestRedisRememberedRefusalsAreCounted: instrumented as keygate does (the
// Fallback in front of it counts nothing), refusals answered from the memo
// count as the Redis backend's refusals, though only the first reached
// Redis, and as remembered, all but that first one.
func TestRedisRememberedRefusalsAreCounted(t *testing.T) {
	client, counter := newScriptCounter(t)
	reg := prometheus.NewPedanticRegistry()
	metrics, err := ratelimit.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	l := metrics.Instrument("redis", redislimit.New(client, redislimit.Options{}))
	ctx := context.Background()
	l.Allow(ctx, "ip:192.0.2.1", 2, time.Hour) // the script reaches Redis's cache
	before := counter.scripts()
	for range 50 {
		if _, err := l.Allow(ctx, "ip:192.0.2.1", 2, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if got := counter.scripts() - before; got != 2 {
		t.Fatalf("Redis ran %d scripts for 1 request allowed and 49 refused, want 2 (the first refusal's)", got)
	}
	if allowed, limited, remembered := decisions(t, reg, "redis"); allowed != 2 || limited != 49 || remembered != 48 {
		t.Fatalf("counted %v allowed, %v limited and %v remembered by Redis, want 2, 49 and 48", allowed, limited, remembered)
	}
}

// decisions reads keygate_ratelimit_requests_total and
// keygate_ratelimit_refusals_remembered_total of backend from reg.
func decisions(t *testing.T, reg *prometheus.Registry, backend string) (allowed, limited, remembered float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["backend"] != backend {
				continue
			}
			switch {
			case f.GetName() == "keygate_ratelimit_refusals_remembered_total":
				remembered = m.GetCounter().GetValue()
			case f.GetName() != "keygate_ratelimit_requests_total":
			case labels["result"] == "allowed":
				allowed = m.GetCounter().GetValue()
			case labels["result"] == "limited":
				limited = m.GetCounter().GetValue()
			}
		}
	}
	return allowed, limited, remembered
}

// BenchmarkRefusedDecisions measures a client hammering a full window, on
// the memory limiter and on the Redis one with and without its memo of
// refusals, and reports how many scripts Redis ran per refusal after the
// first.
func BenchmarkRefusedDecisions(b *testing.B) {
	ctx := context.Background()
	const key, limit, period = "tok:runaway", 10, time.Hour
	// hammer fills the window and sends its first refusal, calls ready,
	// then measures the refusals after it.
	hammer := func(b *testing.B, l ratelimit.Limiter, ready func()) {
		for range limit + 1 {
			l.Allow(ctx, key, limit, period)
		}
		ready()
		b.ReportAllocs()
		for b.Loop() {
			if res, err := l.Allow(ctx, key, limit, period); err != nil || res.Allowed {
				b.Fatalf("%+v, %v; want refused", res, err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) {
		m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
		defer m.Close()
		hammer(b, m, func() {})
	})
	for _, tc := range []struct {
		name string
		opts redislimit.Options
	}{{"redis", redislimit.Options{}}, {"redis without memo", redislimit.Options{NoRefusalMemo: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			client, counter := newScriptCounter(b)
			var before int64
			hammer(b, redislimit.New(client, tc.opts), func() { before = counter.scripts() })
			b.ReportMetric(float64(counter.scripts()-before)/float64(b.N), "scripts/refusal")
		})
	}
}
