package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate"
)

// Mode says what a Fallback does while its shared backend (Redis) is down.
type Mode string

const (
	// ModeLocal keeps limiting with the in-memory limiter: each instance
	// then enforces the limit on its own, so several instances together can
	// let up to one limit per instance through until the backend is back.
	ModeLocal Mode = "local"
	// ModeSplit keeps limiting in memory, each instance to its share of
	// the limit: the limit divided by the instances that were alive when
	// the backend was last reached (FallbackOptions.Peers), at least 1. The
	// instances together then stay within the limit (when it is at least
	// the number of instances), at the price of refusing early a client
	// whose requests all land on one instance.
	ModeSplit Mode = "shared-split"
	// ModeClosed refuses rate-limited requests with EUNAVAILABLE (503 in
	// the API's preset) rather than limit them less strictly.
	ModeClosed Mode = "closed"
)

// maxOutageKeys bounds how many keys an outage remembers for seeding the
// backend on recovery; beyond it, keys go unrecorded (the backend then
// starts them empty, as before).
const maxOutageKeys = 100_000

// DefaultProbeInterval is how often a Fallback retries a backend that
// failed, when FallbackOptions leaves it unset.
const DefaultProbeInterval = time.Second

// ParseMode reads a mode from config; "" is ModeLocal.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeLocal:
		return ModeLocal, nil
	case ModeSplit, ModeClosed:
		return Mode(s), nil
	}
	return "", keygate.Errorf(keygate.EINVALID, "Rate limit fallback mode must be %q, %q or %q, got %q.", ModeLocal, ModeSplit, ModeClosed, s)
}

// FallbackOptions configures a Fallback. The zero value is ModeLocal,
// probing every DefaultProbeInterval, logging to slog.Default().
type FallbackOptions struct {
	Mode Mode
	// ProbeInterval is the least time between two attempts to reach a
	// backend that failed: a dead Redis gets one request per interval, not
	// one per client request.
	ProbeInterval time.Duration
	Logger        *slog.Logger
	// OnChange, if set, is called with true when the backend starts
	// failing and with false when it answers again, e.g. to set a gauge.
	OnChange func(degraded bool)
	// Peers, for ModeSplit, returns how many instances share the backend
	// (this one included), as last known; nil counts 1.
	Peers func() int
}

// Seeder adds requests allowed elsewhere to a key's window. A Fallback
// whose limiters are Seeders keeps each side's view of the other:
//
//   - every request the shared backend allows is also counted in the
//     local limiter, so when the backend fails, local limiting starts from
//     what this instance let through, not from zero;
//   - on recovery, the local window of every key limited locally during
//     the outage is added to the backend while the window is open, so a
//     Redis that restarted empty does not grant every key a fresh window.
type Seeder interface {
	// Seed counts n more requests for key now, whatever the limit.
	Seed(ctx context.Context, key string, n int, period time.Duration) error
}

// Fallback is the Limiter the gateway uses with Redis: it asks the shared
// backend and, when that fails, applies its Mode until the backend answers
// again. It logs once when an outage starts and once when it ends.
type Fallback struct {
	shared   Limiter
	local    Limiter
	mode     Mode
	interval time.Duration
	logger   *slog.Logger
	onChange func(bool)

	start     time.Time // monotonic origin for nextProbe
	degraded  atomic.Bool
	seeding   atomic.Bool  // the backend answers again; outage counts are being added to it
	nextProbe atomic.Int64 // nanoseconds since start

	peers      func() int
	sharedSeed Seeder // nil when shared cannot be seeded
	localSeed  Seeder // nil when local cannot be seeded

	mu       sync.Mutex // orders outage transitions, their logs and callbacks
	downedAt time.Time

	allowedMu sync.Mutex
	allowed   map[string]*outageCount // what local limiting allowed, by key, this outage
}

// outageCount is one key's local window during an outage.
type outageCount struct {
	inWindow int // requests in the local window at its last allowed request
	period   time.Duration
	last     time.Time
}

var _ Limiter = (*Fallback)(nil)

// NewFallback returns a Limiter that asks shared and, while shared fails,
// local (ModeLocal) or nobody (ModeClosed; local may then be nil).
func NewFallback(shared, local Limiter, opts FallbackOptions) (*Fallback, error) {
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	if mode != ModeClosed && local == nil {
		return nil, fmt.Errorf("ratelimit: mode %q needs a local limiter", mode)
	}
	f := &Fallback{
		shared:   shared,
		local:    local,
		mode:     mode,
		interval: opts.ProbeInterval,
		logger:   opts.Logger,
		onChange: opts.OnChange,
		start:    time.Now(),
		peers:    opts.Peers,
	}
	f.sharedSeed, _ = shared.(Seeder)
	f.localSeed, _ = local.(Seeder)
	if f.interval <= 0 {
		f.interval = DefaultProbeInterval
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	return f, nil
}

// Degraded reports whether the shared backend is failing, for /readyz.
func (f *Fallback) Degraded() bool { return f.degraded.Load() }

// Mode returns what the Fallback does while degraded.
func (f *Fallback) Mode() Mode { return f.mode }

// Allow implements Limiter.
func (f *Fallback) Allow(ctx context.Context, key string, limit int, period time.Duration) (Result, error) {
	return f.allow(ctx, key, limit, period, f.mode)
}

// WithMode returns a Limiter sharing f's backends and outage state that
// applies mode instead of f's own while the backend is down: one API can
// choose closed while another keeps limiting locally.
func (f *Fallback) WithMode(mode Mode) (Limiter, error) {
	mode, err := ParseMode(string(mode))
	if err != nil {
		return nil, err
	}
	if mode != ModeClosed && f.local == nil {
		return nil, fmt.Errorf("ratelimit: mode %q needs a local limiter", mode)
	}
	return modeView{f: f, mode: mode}, nil
}

type modeView struct {
	f    *Fallback
	mode Mode
}

func (v modeView) Allow(ctx context.Context, key string, limit int, period time.Duration) (Result, error) {
	return v.f.allow(ctx, key, limit, period, v.mode)
}

func (f *Fallback) allow(ctx context.Context, key string, limit int, period time.Duration, mode Mode) (Result, error) {
	if err := Validate(limit, period); err != nil {
		return Result{}, err
	}
	if f.degraded.Load() && (f.seeding.Load() || !f.claimProbe()) {
		return f.allowDegraded(ctx, key, limit, period, mode)
	}
	res, err := f.shared.Allow(ctx, key, limit, period)
	if err == nil {
		if f.degraded.Load() {
			f.recovered()
		}
		if res.Allowed && f.localSeed != nil {
			f.localSeed.Seed(ctx, key, 1, period)
		}
		return res, nil
	}
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about the backend.
		return Result{}, err
	}
	f.failed(err)
	return f.allowDegraded(ctx, key, limit, period, mode)
}

func (f *Fallback) allowDegraded(ctx context.Context, key string, limit int, period time.Duration, mode Mode) (Result, error) {
	switch mode {
	case ModeClosed:
		return Result{}, keygate.Errorf(keygate.EUNAVAILABLE, "Rate limiting is unavailable.")
	case ModeSplit:
		limit = f.share(limit)
	}
	res, err := f.local.Allow(ctx, key, limit, period)
	if err == nil && res.Allowed {
		f.recordAllowed(key, res.Limit-res.Remaining, period)
	}
	return res, err
}

// share is this instance's part of limit while the backend is down.
func (f *Fallback) share(limit int) int {
	peers := 1
	if f.peers != nil {
		peers = max(1, f.peers())
	}
	return max(1, limit/peers)
}

// recordAllowed remembers a key's local window after a request it allowed,
// for seeding the backend when it is back.
func (f *Fallback) recordAllowed(key string, inWindow int, period time.Duration) {
	if f.sharedSeed == nil || !f.degraded.Load() || f.seeding.Load() {
		return
	}
	f.allowedMu.Lock()
	defer f.allowedMu.Unlock()
	c := f.allowed[key]
	if c == nil {
		if f.allowed == nil {
			f.allowed = map[string]*outageCount{}
		}
		if len(f.allowed) >= maxOutageKeys {
			return
		}
		c = &outageCount{}
		f.allowed[key] = c
	}
	c.inWindow = inWindow
	c.period = period
	c.last = time.Now()
}

// seedBackend gives the backend, once it answers again, this instance's
// local window of every key it limited during the outage and whose window
// is still open (see Seeder): what it allowed during the outage and, from
// the mirror, before it. A Redis that restarted empty so gets back every
// instance's part of the window; one that only became unreachable counts
// the requests from before the outage twice. Either way they count as made
// now: conservative, never over the limit.
func (f *Fallback) seedBackend(counts map[string]*outageCount) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seeded := 0
	for key, c := range counts {
		if time.Since(c.last) >= c.period {
			continue
		}
		if err := f.sharedSeed.Seed(ctx, key, c.inWindow, c.period); err != nil {
			f.logger.Warn("rate limit backend back, but seeding it with the outage's counts failed",
				"seeded", seeded, "error", err)
			return
		}
		seeded++
	}
	if seeded > 0 {
		f.logger.Info("rate limit backend seeded with what this instance allowed during the outage", "keys", seeded)
	}
}

// claimProbe lets exactly one caller per interval try the failing backend.
func (f *Fallback) claimProbe() bool {
	now := int64(time.Since(f.start))
	next := f.nextProbe.Load()
	return now >= next && f.nextProbe.CompareAndSwap(next, now+int64(f.interval))
}

func (f *Fallback) failed(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextProbe.Store(int64(time.Since(f.start) + f.interval))
	if f.degraded.Load() {
		return
	}
	f.downedAt = time.Now()
	f.degraded.Store(true)
	msg := "rate limit backend unavailable, limiting in memory on this instance"
	switch f.mode {
	case ModeSplit:
		msg = "rate limit backend unavailable, limiting in memory on this instance to its share of each limit"
	case ModeClosed:
		msg = "rate limit backend unavailable, refusing rate-limited requests"
	}
	f.logger.Warn(msg, "mode", string(f.mode), "error", err)
	if f.onChange != nil {
		f.onChange(true)
	}
}

// recovered ends an outage once the backend answered a probe. When there
// are outage counts to seed, requests stay on local limiting until they
// are in the backend: a backend that restarted empty would otherwise allow
// a fresh window's worth while the seeding is under way.
func (f *Fallback) recovered() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.degraded.Load() || f.seeding.Load() {
		return
	}
	f.allowedMu.Lock()
	counts := f.allowed
	f.allowed = nil
	f.allowedMu.Unlock()
	if len(counts) == 0 {
		f.endOutage()
		return
	}
	f.seeding.Store(true)
	go func() {
		f.seedBackend(counts)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seeding.Store(false)
		f.endOutage()
	}()
}

// endOutage marks the backend healthy again; f.mu is held.
func (f *Fallback) endOutage() {
	f.degraded.Store(false)
	f.logger.Info("rate limit backend recovered", "mode", string(f.mode), "outage", time.Since(f.downedAt).Round(time.Millisecond).String())
	if f.onChange != nil {
		f.onChange(false)
	}
}
