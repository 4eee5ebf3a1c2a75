package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
		Mode: ratelimit.ModeSplit, ProbeInterval: probe, RecoveryGrace: time.Hour, Peers: func() int { return peers },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
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
	// tok_3 was full before the outage and refused all through it: its
	// window must go back too.
	shared.down.Store(false)
	waitRecovered(t, f)
	if got := allowed(t, f, "token:tok_3", 10, 20); got != 5 {
		t.Fatalf("allowed %d of tok_3, want its share of 5 (the grace)", got)
	}
	shared.down.Store(true)
	if got := allowed(t, f, "token:tok_4", 10, 1); got != 1 || !f.Degraded() {
		t.Fatalf("allowed %d of tok_4 in a second outage (degraded %v), want 1 and the outage found", got, f.Degraded())
	}
	if got := allowed(t, f, "token:tok_3", 10, 20); got != 0 {
		t.Fatalf("allowed %d of tok_3 in a second outage, want none", got)
	}
	shared.down.Store(false)
	waitRecovered(t, f)

	s.mu.Lock()
	defer s.mu.Unlock()
	// tok_1: 3 allowed through the backend before the outage (mirrored
	// locally) and 2 more of its share of 5 during it.
	if s.got["token:tok_1"] != 5 || s.got["token:tok_2"] != 1 || s.got["token:tok_3"] != 5 || s.got["token:tok_4"] != 1 || len(s.got) != 4 {
		t.Fatalf("seeded %v, want token:tok_1 5, token:tok_2 1, token:tok_3 5 and token:tok_4 1 (this instance's local windows)", s.got)
	}
}

// waitRecovered waits until f's outage is over: the backend answered a
// ping and holds the outage's counts.
func waitRecovered(t *testing.T, f *ratelimit.Fallback) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.Degraded() {
		if time.Now().After(deadline) {
			t.Fatal("still degraded 5s after the backend answered")
		}
		time.Sleep(time.Millisecond)
	}
}

// slowSeeds blocks every Seed until release is closed.
type slowSeeds struct {
	*flaky
	entered chan struct{}
	release chan struct{}
}

func (s slowSeeds) Seed(ctx context.Context, key string, n int, period time.Duration) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return nil
}

// TestNoBackendOnlyDecisionsWhileSeeding: until the outage's counts are in
// the backend, a request must pass the local window too; a backend that
// came back empty must not hand out a fresh window meanwhile.
func TestNoBackendOnlyDecisionsWhileSeeding(t *testing.T) {
	shared := &flaky{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	backend := slowSeeds{flaky: shared, entered: make(chan struct{}, 1), release: make(chan struct{})}
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { local.Close() })
	f, err := ratelimit.NewFallback(backend, local, ratelimit.FallbackOptions{
		Mode: ratelimit.ModeSplit, ProbeInterval: time.Millisecond, Peers: func() int { return 1 },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	shared.down.Store(true)
	if got := allowed(t, f, "token:tok_1", 10, 10); got != 10 {
		t.Fatalf("allowed %d during the outage, want 10", got)
	}
	shared.down.Store(false)
	select {
	case <-backend.entered: // a ping answered; seeding started
	case <-time.After(5 * time.Second):
		t.Fatal("no seeding 5s after the backend came back")
	}
	calls := shared.calls.Load()
	if got := allowed(t, f, "token:tok_1", 10, 20); got != 0 {
		t.Fatalf("allowed %d while seeding; the local window is full", got)
	}
	if shared.calls.Load() != calls {
		t.Fatalf("the backend was asked %d times for a key whose local window is full", shared.calls.Load()-calls)
	}
	if !f.Degraded() {
		t.Fatal("not degraded while seeding")
	}
	close(backend.release)
	waitRecovered(t, f)
}

// restartable is one Redis the instances share: it can be stopped and
// started again empty, and each instance reaches it through its own view,
// which comes back when the instance's ping gets there.
type restartable struct {
	mu    sync.Mutex
	mem   *ratelimit.Memory
	epoch int
}

func (r *restartable) current() *ratelimit.Memory {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mem
}

func (r *restartable) restartEmpty() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mem = ratelimit.NewMemory(ratelimit.MemoryOptions{SweepInterval: -1})
	r.epoch++
}

// view is one instance's connection to a restartable.
type view struct {
	r    *restartable
	down atomic.Bool
}

func (v *view) Allow(ctx context.Context, key string, limit int, period time.Duration) (ratelimit.Result, error) {
	if v.down.Load() {
		return ratelimit.Result{}, errors.New("connection refused")
	}
	return v.r.current().Allow(ctx, key, limit, period)
}

func (v *view) Seed(ctx context.Context, key string, n int, period time.Duration) error {
	if v.down.Load() {
		return errors.New("connection refused")
	}
	return v.r.current().Seed(ctx, key, n, period)
}

func (v *view) Epoch(context.Context) (string, error) {
	if v.down.Load() {
		return "", errors.New("connection refused")
	}
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	return fmt.Sprint(v.r.epoch), nil
}

func (v *view) Ping(context.Context) error {
	if v.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// TestStaggeredRecoveryStaysWithinTheLimit: three instances in split mode
// lose a Redis that comes back empty, and reach it again one at a time.
// The first one back holds only its own part of the window in Redis; were
// it to decide on Redis alone, it would let the others' part through a
// second time before they seed theirs.
func TestStaggeredRecoveryStaysWithinTheLimit(t *testing.T) {
	const limit, key = 30, "token:tok_1"
	redis := &restartable{}
	redis.restartEmpty()
	var views [3]*view
	var fallbacks [3]*ratelimit.Fallback
	for i := range views {
		views[i] = &view{r: redis}
		local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
		t.Cleanup(func() { local.Close() })
		f, err := ratelimit.NewFallback(views[i], local, ratelimit.FallbackOptions{
			Mode: ratelimit.ModeSplit, ProbeInterval: time.Millisecond, RecoveryGrace: time.Hour,
			Peers: func() int { return 3 },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fallbacks[i] = f
	}
	total := 0
	for _, f := range fallbacks {
		total += allowed(t, f, key, limit, 3)
	}
	for _, v := range views {
		v.down.Store(true)
	}
	redis.restartEmpty()
	for _, f := range fallbacks {
		total += allowed(t, f, key, limit, 20) // each up to its share of 10
	}
	if total != limit {
		t.Fatalf("allowed %d before and during the outage, want %d", total, limit)
	}

	views[0].down.Store(false)
	waitRecovered(t, fallbacks[0])
	if got := allowed(t, fallbacks[0], key, limit, 40); got != 0 {
		t.Errorf("the first instance back allowed %d more while the others had not seeded Redis", got)
	}
	views[1].down.Store(false)
	views[2].down.Store(false)
	waitRecovered(t, fallbacks[1])
	waitRecovered(t, fallbacks[2])
	if n := redis.current().Count(key, time.Minute); n < limit {
		t.Errorf("Redis holds %d of the window once every instance is back, want at least %d", n, limit)
	}
	for _, f := range fallbacks {
		if got := allowed(t, f, key, limit, 10); got != 0 {
			t.Errorf("allowed %d more once every instance was back", got)
		}
	}
}

// TestRecoveryRestoresUntouchedKeysWhenRedisLostItsData: a key limited
// before an outage but not during it is in the local mirror only. If Redis
// comes back empty (its epoch changed), it gets that window back too; if
// Redis was only unreachable, it already has it and is not given it twice.
func TestRecoveryRestoresUntouchedKeysWhenRedisLostItsData(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(fmt.Sprintf("restarted %v", restart), func(t *testing.T) {
			redis := &restartable{}
			redis.restartEmpty()
			v := &view{r: redis}
			local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
			t.Cleanup(func() { local.Close() })
			f, err := ratelimit.NewFallback(v, local, ratelimit.FallbackOptions{
				Mode: ratelimit.ModeSplit, ProbeInterval: time.Millisecond, RecoveryGrace: time.Hour,
				Peers: func() int { return 1 },
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			if got := allowed(t, f, "token:untouched", 30, 10); got != 10 {
				t.Fatalf("allowed %d before the outage, want 10", got)
			}
			for deadline := time.Now().Add(5 * time.Second); f.KnownEpoch() == ""; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the backend's epoch was not learned within 5s")
				}
			}
			v.down.Store(true)
			allowed(t, f, "token:touched", 30, 1)
			if restart {
				redis.restartEmpty()
			}
			v.down.Store(false)
			waitRecovered(t, f)
			if n := redis.current().Count("token:untouched", time.Minute); n != 10 {
				t.Errorf("Redis holds %d of the untouched key's window after the outage, want the 10 allowed before it", n)
			}
			if n := redis.current().Count("token:touched", time.Minute); n != 1 {
				t.Errorf("Redis holds %d of the touched key's window, want 1", n)
			}
		})
	}
}
