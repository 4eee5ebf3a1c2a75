package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// shardCount spreads keys over independent locks so that requests for
// different keys rarely wait on each other. A power of two: the shard is
// picked with a mask.
const shardCount = 256

// DefaultSweepInterval is how often Memory drops idle keys when
// MemoryOptions leaves it unset.
const DefaultSweepInterval = time.Minute

// MemoryOptions configures a Memory limiter. The zero value is ready to use.
type MemoryOptions struct {
	// Now is the clock; nil means time.Now. Tests move a fake one.
	Now func() time.Time
	// SweepInterval is how often idle keys are dropped; 0 means
	// DefaultSweepInterval, a negative value disables the sweeper (the
	// owner then has nothing to stop, and idle keys stay until reused).
	SweepInterval time.Duration
}

// Memory is the in-process Limiter: the default, and the fallback while
// Redis is down. Its memory is bounded by the keys active within their
// period: a key holds a fixed window of counters whatever its limit and
// rate, and a sweeper drops keys whose counted requests have all left the
// window. Call Close to stop the sweeper.
type Memory struct {
	now    func() time.Time
	base   time.Time // clock reading at start; timestamps are offsets from it
	seed   maphash.Seed
	shards [shardCount]shard

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type shard struct {
	mu      sync.Mutex
	windows map[string]*window
	// peak is the most keys the map has held since it was last rebuilt.
	// Go maps never give memory back, so after a burst of distinct keys
	// the sweeper rebuilds a map that has shrunk well below its peak.
	peak int
	_    [40]byte // keep shards on separate cache lines
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns a Memory limiter and starts its sweeper.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{now: opts.Now, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	if m.now == nil {
		m.now = time.Now
	}
	// Offsets from base use the monotonic clock, so a wall-clock jump
	// neither frees nor freezes anybody's window.
	m.base = m.now()
	for i := range m.shards {
		m.shards[i].windows = make(map[string]*window)
	}
	interval := opts.SweepInterval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if interval < 0 {
		close(m.done)
		return m
	}
	go m.sweepEvery(interval)
	return m
}

// Close stops the sweeper. The limiter still answers afterwards; idle keys
// are then no longer dropped.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, limit int, period time.Duration) (Result, error) {
	if err := Validate(limit, period); err != nil {
		return Result{}, err
	}
	now := m.elapsed()
	s := &m.shards[maphash.String(m.seed, key)&(shardCount-1)]

	s.mu.Lock()
	w := s.windows[key]
	if w == nil {
		w = &window{}
		s.windows[key] = w
		s.peak = max(s.peak, len(s.windows))
	}
	d := w.allow(now, limit, int64(period))
	s.mu.Unlock()

	res := Result{Allowed: d.allowed, Limit: limit, Remaining: d.remaining, ResetAt: m.base.Add(time.Duration(d.resetAt)), ResetIn: time.Duration(d.resetAt - now)}
	if !d.allowed {
		res.RetryAfter = RetryAfter(res.ResetIn)
	}
	return res, nil
}

// Seed implements Seeder: n requests decided elsewhere join key's window
// now.
func (m *Memory) Seed(_ context.Context, key string, n int, period time.Duration) error {
	if n <= 0 {
		return nil
	}
	if err := Validate(1, period); err != nil {
		return err
	}
	now := m.elapsed()
	s := &m.shards[maphash.String(m.seed, key)&(shardCount-1)]
	s.mu.Lock()
	w := s.windows[key]
	if w == nil {
		w = &window{}
		s.windows[key] = w
		s.peak = max(s.peak, len(s.windows))
	}
	w.add(now, n, int64(period))
	s.mu.Unlock()
	return nil
}

// Count implements Counter: the requests key's window holds now.
func (m *Memory) Count(key string, period time.Duration) int {
	now := m.elapsed()
	s := &m.shards[maphash.String(m.seed, key)&(shardCount-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[key]
	if w == nil {
		return 0
	}
	c := *w
	c.advance(now, BucketWidth(int64(period)))
	return int(c.total())
}

// Walk implements Walker: fn gets every key with requests in its window
// now, their number and the key's period (as its bucket width gives it).
// It holds one shard's lock at a time; fn must not call the limiter.
func (m *Memory) Walk(fn func(key string, inWindow int, period time.Duration)) {
	for i := range m.shards {
		s := &m.shards[i]
		now := m.elapsed()
		s.mu.Lock()
		for key, w := range s.windows {
			if w.idle(now) {
				continue
			}
			c := *w
			c.advance(now, c.width)
			if n := c.total(); n > 0 {
				fn(key, int(n), time.Duration(c.width*Buckets))
			}
		}
		s.mu.Unlock()
	}
}

// Len returns how many keys the limiter holds, idle ones not yet swept
// included.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.windows)
		s.mu.Unlock()
	}
	return n
}

func (m *Memory) elapsed() int64 { return int64(m.now().Sub(m.base)) }

func (m *Memory) sweepEvery(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep drops every key whose requests have all left their window. It
// locks one shard at a time so requests for other shards go on.
func (m *Memory) sweep() {
	for i := range m.shards {
		s := &m.shards[i]
		now := m.elapsed()
		s.mu.Lock()
		for key, w := range s.windows {
			if w.idle(now) {
				delete(s.windows, key)
			}
		}
		if s.peak > 1024 && len(s.windows) < s.peak/4 {
			s.windows = clone(s.windows)
			s.peak = len(s.windows)
		}
		s.mu.Unlock()
	}
}

func clone(windows map[string]*window) map[string]*window {
	c := make(map[string]*window, len(windows))
	for k, w := range windows {
		c[k] = w
	}
	return c
}
