package ratelimit_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/limitertest"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newMemory(t testing.TB, sweep time.Duration) (*ratelimit.Memory, *limitertest.FakeClock) {
	clock := limitertest.NewFakeClock(start)
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clock.Now, SweepInterval: sweep})
	t.Cleanup(func() { m.Close() })
	return m, clock
}

func TestMemoryContract(t *testing.T) {
	limitertest.Run(t, limitertest.Backend{
		New: func(t *testing.T) (ratelimit.Limiter, limitertest.Clock) {
			return newMemory(t, -1)
		},
		NewAt:  newMemoryAt,
		Period: time.Minute,
	})
}

func TestMemoryContractRealClock(t *testing.T) {
	limitertest.Run(t, limitertest.Backend{
		New: func(t *testing.T) (ratelimit.Limiter, limitertest.Clock) {
			m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
			t.Cleanup(func() { m.Close() })
			return m, limitertest.RealClock{}
		},
		NewAt:     newMemoryAt,
		Period:    time.Second,
		Tolerance: 100 * time.Millisecond,
	})
}

func newMemoryAt(t *testing.T, now func() time.Time) ratelimit.Limiter {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: now, SweepInterval: -1})
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemorySweepDropsIdleKeys(t *testing.T) {
	m, clock := newMemory(t, -1)
	ctx := context.Background()
	for i := range 5000 {
		m.Allow(ctx, "ip:"+strconv.Itoa(i), 10, time.Minute)
	}
	clock.Sleep(30 * time.Second)
	m.Allow(ctx, "ip:active", 10, time.Minute)
	m.Allow(ctx, "ip:long", 10, time.Hour)
	if got := m.Len(); got != 5002 {
		t.Fatalf("Len = %d, want 5002", got)
	}

	// A minute and a bucket after the first requests they are idle; the
	// key used 30s later and the key with an hour's window are not.
	clock.Sleep(30*time.Second + bucket(time.Minute))
	m.Sweep()
	if got := m.Len(); got != 2 {
		t.Fatalf("Len after sweep = %d, want 2", got)
	}
	clock.Sleep(30 * time.Second)
	m.Sweep()
	if got := m.Len(); got != 1 {
		t.Fatalf("Len after second sweep = %d, want 1 (the hour-long window)", got)
	}
	// A swept key starts afresh.
	res, _ := m.Allow(ctx, "ip:7", 10, time.Minute)
	if !res.Allowed || res.Remaining != 9 {
		t.Fatalf("swept key: %+v, want a fresh window", res)
	}
}

func TestMemorySweeperRunsUntilClosed(t *testing.T) {
	m, clock := newMemory(t, time.Millisecond)
	m.Allow(context.Background(), "ip:192.0.2.1", 1, time.Second)
	clock.Sleep(time.Second + 2*bucket(time.Second))
	deadline := time.Now().Add(5 * time.Second)
	for m.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("sweeper did not drop the idle key")
		}
		time.Sleep(time.Millisecond)
	}
	m.Close()
	m.Close() // a second Close is harmless
	m.Allow(context.Background(), "ip:192.0.2.1", 1, time.Second)
	clock.Sleep(time.Second)
	time.Sleep(20 * time.Millisecond)
	if m.Len() != 1 {
		t.Fatal("sweeper still running after Close")
	}
}

func TestMemoryKeyStateDoesNotGrowWithRate(t *testing.T) {
	m, clock := newMemory(t, -1)
	ctx := context.Background()
	m.Allow(ctx, "tok:1", 1_000_000, time.Minute)
	seen := heap()
	for range 200_000 {
		clock.Sleep(50 * time.Microsecond)
		m.Allow(ctx, "tok:1", 1_000_000, time.Minute)
	}
	// A log of timestamps would have grown by 1.6 MB; 64 KB leaves room
	// for what the runtime and the test framework allocate meanwhile.
	if grown := int64(heap()) - int64(seen); grown > 64<<10 {
		t.Fatalf("heap grew %d bytes over 200,000 allowed requests of one key, want a fixed state", grown)
	}
	if got := ratelimit.WindowSize(); got > 128 {
		t.Fatalf("a key's window is %d bytes, want at most 128", got)
	}
}

func TestMemoryClockSteppingBack(t *testing.T) {
	m, clock := newMemory(t, -1)
	ctx := context.Background()
	m.Allow(ctx, "tok:1", 2, time.Minute)
	clock.Sleep(-time.Hour)
	if res, _ := m.Allow(ctx, "tok:1", 2, time.Minute); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("after the clock stepped back: %+v, want allowed with Remaining 0", res)
	}
	if res, _ := m.Allow(ctx, "tok:1", 2, time.Minute); res.Allowed {
		t.Fatal("a clock stepping back let a third request of two through")
	}
}

// BenchmarkMemoryMillionKeys fills a limiter with one million distinct
// client IPs and reports the heap each costs, then lets them go idle and
// reports what a sweep leaves behind.
func BenchmarkMemoryMillionKeys(b *testing.B) {
	const keys = 1_000_000
	ctx := context.Background()
	var perKey, afterSweep float64
	for b.Loop() {
		clock := limitertest.NewFakeClock(start)
		m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clock.Now, SweepInterval: -1})
		before := heap()
		for i := range keys {
			// Built per request, as the gateway does: the key's bytes are
			// part of what a key costs.
			key := fmt.Sprintf("ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			m.Allow(ctx, key, 10, time.Minute)
		}
		perKey = float64(heap()-before) / keys
		clock.Sleep(time.Minute + bucket(time.Minute))
		m.Sweep()
		afterSweep = float64(heap()) - float64(before)
		if m.Len() != 0 {
			b.Fatalf("Len after sweep = %d", m.Len())
		}
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perKey, "bytes/key")
	b.ReportMetric(afterSweep, "bytes-after-sweep")
}

// bucket is how long after its period a request may still be counted.
func bucket(period time.Duration) time.Duration {
	return time.Duration(ratelimit.BucketWidth(int64(period)))
}

func heap() uint64 {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.HeapAlloc
}

// BenchmarkMemoryAllowed measures one busy key whose requests all pass:
// 60 per minute arriving every 1.1 seconds, so the window is nearly full
// and turning.
func BenchmarkMemoryAllowed(b *testing.B) {
	clock := limitertest.NewFakeClock(start)
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clock.Now, SweepInterval: -1})
	ctx := context.Background()
	for b.Loop() {
		clock.Sleep(1100 * time.Millisecond)
		if res, _ := m.Allow(ctx, "tok:busy", 60, time.Minute); !res.Allowed {
			b.Fatal("refused")
		}
	}
}

// BenchmarkMemoryRefused measures a client hammering a full window.
func BenchmarkMemoryRefused(b *testing.B) {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	for b.Loop() {
		m.Allow(ctx, "ip:192.0.2.1", 10, time.Minute)
	}
}

func BenchmarkMemoryManyKeysParallel(b *testing.B) {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "ip:192.0.2." + strconv.Itoa(i)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Allow(ctx, keys[i%len(keys)], 100, time.Minute)
			i++
		}
	})
}
