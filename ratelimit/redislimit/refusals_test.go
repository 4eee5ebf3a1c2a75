package redislimit

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

func refusalsOf(n int, until int64) *refusals {
	r := newRefusals(maxRefusals)
	for i := range n {
		r.remember(refusalKey{key: "tok:" + strconv.Itoa(i), limit: 60, period: time.Minute}, refusal{until: until}, 0)
	}
	return r
}

// TestRefusalsAreBounded: past its bound the memo makes room, expired
// refusals first, and never holds more than the bound.
func TestRefusalsAreBounded(t *testing.T) {
	const bound = 80
	r := newRefusals(bound)
	at := func(i int) refusalKey {
		return refusalKey{key: "ip:" + strconv.Itoa(i), limit: 10, period: time.Minute}
	}
	// The first ten end at 100, the others at 1000.
	for i := range bound {
		until := int64(1000)
		if i < 10 {
			until = 100
		}
		r.remember(at(i), refusal{until: until}, 0)
	}
	r.remember(at(bound), refusal{until: 1000}, 500)
	if len(r.m) != bound-10+1 {
		t.Fatalf("%d refusals kept after one more at the bound, want the %d live ones and the new one", len(r.m), bound-10)
	}
	for i := range 10 {
		if _, ok := r.m[at(i)]; ok {
			t.Fatalf("expired refusal %d kept", i)
		}
	}
	for i := bound + 1; i < 10*bound; i++ {
		r.remember(at(i), refusal{until: 1000}, 500)
		if len(r.m) > bound {
			t.Fatalf("%d refusals kept, bound %d", len(r.m), bound)
		}
	}
	if _, ok := r.answer(at(10*bound-1), 500); !ok {
		t.Fatal("the refusal remembered last is not answered")
	}
}

// TestRefusalsCostNoAllocation: the memo is asked on every Redis-limited
// request; neither a miss nor an answer allocates.
func TestRefusalsCostNoAllocation(t *testing.T) {
	r := refusalsOf(1000, 1000)
	hit := refusalKey{key: "tok:7", limit: 60, period: time.Minute}
	miss := refusalKey{key: "tok:unseen", limit: 60, period: time.Minute}
	otherLimit := refusalKey{key: "tok:7", limit: 61, period: time.Minute}
	for _, tc := range []struct {
		name   string
		k      refusalKey
		answer bool
	}{{"hit", hit, true}, {"miss", miss, false}, {"another limit", otherLimit, false}} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, ok := r.answer(tc.k, 500); ok != tc.answer {
				t.Fatalf("%s: answered %v", tc.name, ok)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.0f allocations, want none", tc.name, allocs)
		}
	}
	// A Limiter without the memo asks a nil one.
	var none *refusals
	if allocs := testing.AllocsPerRun(100, func() { none.answer(hit, 500) }); allocs != 0 {
		t.Errorf("no memo: %.0f allocations, want none", allocs)
	}
}

// BenchmarkRefusalMemo measures asking a memo of 10,000 refusals: a key it
// answers and one it does not hold.
func BenchmarkRefusalMemo(b *testing.B) {
	r := refusalsOf(10_000, 1000)
	for _, tc := range []struct {
		name string
		k    refusalKey
	}{
		{"hit", refusalKey{key: "tok:7", limit: 60, period: time.Minute}},
		{"miss", refusalKey{key: "tok:unseen", limit: 60, period: time.Minute}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.answer(tc.k, 500)
			}
		})
	}
}

// BenchmarkRefusalMemoFull fills a memo to its bound with token keys as
// the gateway names them and reports the heap each refusal costs, its
// key's bytes included.
func BenchmarkRefusalMemoFull(b *testing.B) {
	var perRefusal float64
	for b.Loop() {
		before := heap()
		r := newRefusals(maxRefusals)
		for i := range maxRefusals {
			key := "events:token:tok_" + strconv.Itoa(1_000_000+i) + "abcdefghijkl"
			r.remember(refusalKey{key: key, limit: 60, period: time.Minute}, refusal{until: 1000}, 0)
		}
		perRefusal = float64(heap()-before) / float64(len(r.m))
		runtime.KeepAlive(r)
	}
	b.ReportMetric(perRefusal, "bytes/refusal")
}

func heap() uint64 {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.HeapAlloc
}
