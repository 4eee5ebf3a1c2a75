package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/ratelimit"
)

// seeds records what a Fallback seeds its backend with on recovery.
type seeds struct {
	mu  sync.Mutex
	got map[string]int
	ch  chan struct{}
}

func (s *seeds) Seed(_ context.Context, key string, n int, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[key] += n
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return nil
}

// seedable is a flaky shared backend whose seeding is recorded.
type seedable struct {
	*flaky
	seeds *seeds
}

func (s seedable) Seed(ctx context.Context, key string, n int, period time.Duration) error {
	return s.seeds.Seed(ctx, key, n, period)
}

func newSplit(t *testing.T, peers int, seed *seeds, probe time.Duration) (*flaky, *ratelimit.Fallback) {
	t.Helper()
	shared := &flaky{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	var backend ratelimit.Limiter = shared
	if seed != nil {
		backend = seedable{shared, seed}
	}
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { local.Close() })
	f, err := ratelimit.NewFallback(backend, local, ratelimit.FallbackOptions{
		Mode: ratelimit.ModeSplit, ProbeInterval: probe, Peers: func() int { return peers },
	})
	if err != nil {
		t.Fatal(err)
	}
	return shared, f
}

func allowed(t *testing.T, l ratelimit.Limiter, key string, limit, attempts int) int {
	t.Helper()
	n := 0
	for range attempts {
		res, err := l.Allow(context.Background(), key, limit, time.Minute)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if res.Allowed {
			n++
		}
	}
	return n
}

func TestSplitModeEnforcesThisInstancesShare(t *testing.T) {
	for _, tt := range []struct{ limit, peers, want int }{
		{100, 3, 33}, // three instances together: 99, never over 100
		{100, 1, 100},
		{2, 3, 1}, // a limit below the instance count: at least one each
	} {
		shared, f := newSplit(t, tt.peers, nil, time.Hour)
		shared.down.Store(true)
		if got := allowed(t, f, "token:tok_1", tt.limit, 3*tt.limit); got != tt.want {
			t.Errorf("limit %d over %d instances: allowed %d while Redis is down, want %d", tt.limit, tt.peers, got, tt.want)
		}
	}
}

// TestLocalLimitingStartsFromWhatThisInstanceAllowed: requests the backend
// allowed are counted locally too, so an outage does not open a fresh
// window on this instance.
func TestLocalLimitingStartsFromWhatThisInstanceAllowed(t *testing.T) {
	shared, f := newSplit(t, 1, nil, time.Hour)
	if got := allowed(t, f, "token:tok_1", 50, 20); got != 20 {
		t.Fatalf("allowed %d with the backend up, want 20", got)
	}
	shared.down.Store(true)
	if got := allowed(t, f, "token:tok_1", 50, 100); got != 30 {
		t.Fatalf("allowed %d more once the backend failed, want the 30 left of 50", got)
	}
}

func TestModePerAPI(t *testing.T) {
	shared, f := newSplit(t, 4, nil, time.Hour)
	closed, err := f.WithMode(ratelimit.ModeClosed)
	if err != nil {
		t.Fatal(err)
	}
	local, err := f.WithMode(ratelimit.ModeLocal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WithMode("open"); keygate.ErrorCode(err) != keygate.EINVALID {
		t.Errorf("WithMode(open) = %v, want EINVALID", err)
	}
	shared.down.Store(true)
	if _, err := closed.Allow(context.Background(), "k", 10, time.Minute); keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Errorf("closed API while down: %v, want EUNAVAILABLE", err)
	}
	if got := allowed(t, local, "a", 10, 30); got != 10 {
		t.Errorf("local API while down allowed %d of limit 10, want 10", got)
	}
	if got := allowed(t, f, "b", 10, 30); got != 2 {
		t.Errorf("shared-split API (4 instances) while down allowed %d of limit 10, want 2", got)
	}
}

func TestRecoverySeedsTheBackendWithTheOutagesCounts(t *testing.T) {
	s := &seeds{got: map[string]int{}, ch: make(chan struct{}, 10)}
	shared, f := newSplit(t, 2, s, time.Millisecond)
	if got := allowed(t, f, "token:tok_1", 10, 3); got != 3 {
		t.Fatalf("allowed %d before the outage, want 3", got)
	}
	shared.down.Store(true)
	if got := allowed(t, f, "token:tok_1", 10, 20); got != 2 {
		t.Fatalf("allowed %d during the outage, want 2 (a share of 5, 3 already used here)", got)
	}
	allowed(t, f, "token:tok_2", 10, 1)

	shared.down.Store(false)
	time.Sleep(5 * time.Millisecond) // the next probe is due
	allowed(t, f, "token:tok_3", 10, 1)
	for range 2 {
		select {
		case <-s.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("seeded %v within 5s, want both keys", s.got)
		}
	}
	// Requests stay on local limiting until the seeding is done, then go
	// to the backend again.
	deadline := time.Now().Add(5 * time.Second)
	for f.Degraded() {
		if time.Now().After(deadline) {
			t.Fatal("still degraded 5s after the backend answered and was seeded")
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// tok_1: 3 allowed through the backend before the outage (mirrored
	// locally) and 2 more of its share of 5 during it.
	if s.got["token:tok_1"] != 5 || s.got["token:tok_2"] != 1 || len(s.got) != 2 {
		t.Fatalf("seeded %v, want token:tok_1 5 and token:tok_2 1 (this instance's local windows)", s.got)
	}
}

// slowSeeds blocks every Seed until release is closed.
type slowSeeds struct {
	*flaky
	release chan struct{}
}

func (s slowSeeds) Seed(ctx context.Context, key string, n int, period time.Duration) error {
	<-s.release
	return nil
}

// TestNoBackendDecisionsWhileSeeding: until the outage's counts are in the
// backend, requests stay on local limiting; a backend that came back empty
// must not hand out a fresh window meanwhile.
func TestNoBackendDecisionsWhileSeeding(t *testing.T) {
	shared := &flaky{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	backend := slowSeeds{flaky: shared, release: make(chan struct{})}
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { local.Close() })
	f, err := ratelimit.NewFallback(backend, local, ratelimit.FallbackOptions{
		Mode: ratelimit.ModeSplit, ProbeInterval: time.Millisecond, Peers: func() int { return 1 },
	})
	if err != nil {
		t.Fatal(err)
	}
	shared.down.Store(true)
	if got := allowed(t, f, "token:tok_1", 10, 10); got != 10 {
		t.Fatalf("allowed %d during the outage, want 10", got)
	}
	shared.down.Store(false)
	time.Sleep(5 * time.Millisecond)
	allowed(t, f, "token:tok_1", 10, 1) // the probe: the backend answers, seeding starts
	calls := shared.calls.Load()
	time.Sleep(5 * time.Millisecond)
	if got := allowed(t, f, "token:tok_1", 10, 20); got != 0 {
		t.Fatalf("allowed %d while seeding; the local window is full", got)
	}
	if shared.calls.Load() != calls {
		t.Fatalf("the backend was asked %d times while being seeded", shared.calls.Load()-calls)
	}
	close(backend.release)
	deadline := time.Now().Add(5 * time.Second)
	for f.Degraded() {
		if time.Now().After(deadline) {
			t.Fatal("still degraded after the seeding finished")
		}
		time.Sleep(time.Millisecond)
	}
}
