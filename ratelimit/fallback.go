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
	// ProbeInterval is how often a backend that failed is pinged, in the
	// background: requests never wait on a dead Redis.
	ProbeInterval time.Duration
	// RecoveryGrace is how long, once the backend answers again and holds
	// this instance's outage counts, each request must also pass this
	// instance's local limit (its share, in ModeSplit) besides the
	// backend's (0: three probe intervals). The other instances come back
	// on their own probes; until each has added its counts, the backend
	// holds only part of the window, and an instance deciding on it alone
	// would let the rest of the window through again.
	RecoveryGrace time.Duration
	Logger        *slog.Logger
	// OnChange, if set, is called with true when the backend starts
	// failing and with false when it answers again, e.g. to set a gauge.
	OnChange func(degraded bool)
	// Peers, for ModeSplit, returns how many instances share the backend
	// (this one included), as last known; nil counts 1.
	Peers func() int
}

// Pinger is a shared backend that can say whether it answers without
// deciding anything. A Fallback's backend must be one: while it fails, the
// Fallback pings it in the background rather than send it requests.
type Pinger interface {
	Ping(ctx context.Context) error
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

// Counter reads how many requests a key's window holds now. A Fallback
// whose local limiter is a Counter seeds the backend with the whole local
// window of each key at the moment of seeding: what the mirror counted
// before the outage, what was allowed during it, whether the key's last
// outage request passed or not.
type Counter interface {
	Count(key string, period time.Duration) int
}

// Epocher is a shared backend that can tell whether it lost what it held:
// Epoch names its current contents, and changes when it starts over empty
// (a Redis restarted without persistence). A Fallback learns the epoch
// while the backend answers; if it differs after an outage, every open
// window of the local limiter goes back to the backend, not only those of
// the keys limited during the outage.
type Epocher interface {
	Epoch(ctx context.Context) (string, error)
}

// Walker is a local limiter whose windows can be listed: each key with
// requests in its window, how many, and the key's period.
type Walker interface {
	Walk(fn func(key string, inWindow int, period time.Duration))
}

// Fallback is the Limiter the gateway uses with Redis: it asks the shared
// backend and, when that fails, applies its Mode until the backend answers
// again. It logs once when an outage starts and once when it ends.
//
// An outage has three stages. Degraded: requests are decided by the local
// limiter alone (to a share of the limit in ModeSplit), and the keys they
// touch are noted; the backend is pinged every ProbeInterval. Seeding: the
// backend answers; the noted keys' local windows are added to it, while
// requests must pass both the local limit and the backend. Grace: the
// same double check for RecoveryGrace more, until every other instance
// has come back and seeded too. Then the backend alone decides again.
type Fallback struct {
	shared   Limiter
	local    Limiter
	mode     Mode
	interval time.Duration
	grace    time.Duration
	logger   *slog.Logger
	onChange func(bool)

	start      time.Time // monotonic origin for graceUntil
	degraded   atomic.Bool
	seeding    atomic.Bool  // the backend answers again; outage counts are being added to it
	graceUntil atomic.Int64 // nanoseconds since start

	peers      func() int
	pinger     Pinger
	sharedSeed Seeder  // nil when shared cannot be seeded
	localSeed  Seeder  // nil when local cannot be seeded
	counter    Counter // nil when local cannot be read
	epocher    Epocher // nil when shared cannot tell a restart
	walker     Walker  // nil when local cannot be listed

	epoch    atomic.Pointer[string] // the shared backend's epoch as last learned; nil unknown
	learning atomic.Bool            // an Epoch call is under way

	mu       sync.Mutex // orders outage transitions, their logs and callbacks
	downedAt time.Time
	probing  bool // the probe loop runs
	stop     chan struct{}
	stopOnce sync.Once

	touchedMu sync.Mutex
	touched   map[string]*outageCount // keys limited locally this outage
}

// outageCount is one key's local window during an outage.
type outageCount struct {
	inWindow int // requests in the local window at its last request (used without a Counter)
	period   time.Duration
	last     time.Time
}

var _ Limiter = (*Fallback)(nil)

// NewFallback returns a Limiter that asks shared and, while shared fails,
// local (ModeLocal, ModeSplit) or nobody (ModeClosed; local may then be
// nil). shared must be a Pinger. Close stops its probing.
func NewFallback(shared, local Limiter, opts FallbackOptions) (*Fallback, error) {
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	if mode != ModeClosed && local == nil {
		return nil, fmt.Errorf("ratelimit: mode %q needs a local limiter", mode)
	}
	pinger, ok := shared.(Pinger)
	if !ok {
		return nil, fmt.Errorf("ratelimit: the shared limiter %T cannot be pinged", shared)
	}
	f := &Fallback{
		shared:   shared,
		local:    local,
		mode:     mode,
		interval: opts.ProbeInterval,
		grace:    opts.RecoveryGrace,
		logger:   opts.Logger,
		onChange: opts.OnChange,
		start:    time.Now(),
		peers:    opts.Peers,
		pinger:   pinger,
		stop:     make(chan struct{}),
	}
	f.sharedSeed, _ = shared.(Seeder)
	f.localSeed, _ = local.(Seeder)
	f.counter, _ = local.(Counter)
	f.epocher, _ = shared.(Epocher)
	f.walker, _ = local.(Walker)
	if f.interval <= 0 {
		f.interval = DefaultProbeInterval
	}
	if f.grace <= 0 {
		f.grace = 3 * f.interval
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	return f, nil
}

// Close stops pinging a failed backend. Requests are still answered.
func (f *Fallback) Close() error {
	f.stopOnce.Do(func() { close(f.stop) })
	return nil
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
	switch {
	case f.degraded.Load() && !f.seeding.Load():
		return f.allowDegraded(ctx, key, limit, period, mode)
	case f.seeding.Load() || f.inGrace():
		return f.allowRecovering(ctx, key, limit, period, mode)
	}
	res, err := f.shared.Allow(ctx, key, limit, period)
	if err == nil {
		if res.Allowed && f.localSeed != nil {
			f.localSeed.Seed(ctx, key, 1, period)
		}
		f.learnEpoch()
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
	if mode == ModeClosed {
		return Result{}, keygate.Errorf(keygate.EUNAVAILABLE, "Rate limiting is unavailable.")
	}
	res, err := f.local.Allow(ctx, key, f.localLimit(limit, mode), period)
	if err == nil {
		f.touch(key, res, period)
	}
	return res, err
}

// allowRecovering decides while the backend is being seeded or other
// instances may not have seeded it yet: a request passes when this
// instance's local limit allows it (counting it there) and then the
// backend does. A request the backend then refuses stays counted locally:
// an error towards refusing, never towards the limit.
func (f *Fallback) allowRecovering(ctx context.Context, key string, limit int, period time.Duration, mode Mode) (Result, error) {
	if f.local != nil {
		// In closed mode too: the backend may not hold this instance's
		// mirror of the key yet.
		lres, err := f.local.Allow(ctx, key, f.localLimit(limit, mode), period)
		if err != nil || !lres.Allowed {
			return lres, err
		}
		res, err := f.shared.Allow(ctx, key, limit, period)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		f.failed(err)
		if mode == ModeClosed {
			return Result{}, keygate.Errorf(keygate.EUNAVAILABLE, "Rate limiting is unavailable.")
		}
		f.touch(key, lres, period)
		return lres, nil
	}
	res, err := f.shared.Allow(ctx, key, limit, period)
	if err != nil && ctx.Err() == nil {
		f.failed(err)
		return f.allowDegraded(ctx, key, limit, period, mode)
	}
	return res, err
}

// localLimit is the limit the local limiter enforces for mode: this
// instance's share in ModeSplit, the whole limit otherwise.
func (f *Fallback) localLimit(limit int, mode Mode) int {
	if mode != ModeSplit {
		return limit
	}
	peers := 1
	if f.peers != nil {
		peers = max(1, f.peers())
	}
	return max(1, limit/peers)
}

func (f *Fallback) inGrace() bool {
	until := f.graceUntil.Load()
	return until != 0 && int64(time.Since(f.start)) < until
}

// touch notes a key limited locally during an outage, for seeding the
// backend when it is back.
func (f *Fallback) touch(key string, res Result, period time.Duration) {
	if f.sharedSeed == nil || !f.degraded.Load() {
		return
	}
	f.touchedMu.Lock()
	defer f.touchedMu.Unlock()
	c := f.touched[key]
	if c == nil {
		if f.touched == nil {
			f.touched = map[string]*outageCount{}
		}
		if len(f.touched) >= maxOutageKeys {
			return
		}
		c = &outageCount{}
		f.touched[key] = c
	}
	if res.Allowed {
		c.inWindow = res.Limit - res.Remaining
	} else {
		c.inWindow = max(c.inWindow, res.Limit)
	}
	c.period = period
	c.last = time.Now()
}

// seedBackend gives the backend, once it answers again, this instance's
// local window of every key it limited during the outage and whose window
// is still open (see Seeder): what it allowed during the outage and, from
// the mirror, before it. A Redis that restarted empty so gets back every
// instance's part of the window; one that only became unreachable counts
// the requests from before the outage twice. Either way they count as made
// now: conservative, never over the limit. It returns the keys it could
// not seed.
func (f *Fallback) seedBackend(counts map[string]*outageCount) map[string]*outageCount {
	if len(counts) == 0 || f.sharedSeed == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := make(chan string)
	var (
		mu       sync.Mutex
		done     = map[string]bool{}
		seeded   int
		firstErr error
		wg       sync.WaitGroup
	)
	// A few at a time: a Redis that lost its data may get every open
	// window of a busy instance back, one round trip each.
	for range min(8, len(counts)) {
		wg.Go(func() {
			for key := range keys {
				c := counts[key]
				n := c.inWindow
				if f.counter != nil {
					n = f.counter.Count(key, c.period)
				} else if time.Since(c.last) >= c.period {
					n = 0
				}
				var err error
				if n > 0 {
					err = f.sharedSeed.Seed(ctx, key, n, c.period)
				}
				mu.Lock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = err
				case err == nil:
					done[key] = true
					if n > 0 {
						seeded++
					}
				}
				mu.Unlock()
			}
		})
	}
	for key := range counts {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		keys <- key
	}
	close(keys)
	wg.Wait()
	left := map[string]*outageCount{}
	for key, c := range counts {
		if !done[key] {
			left[key] = c
		}
	}
	if firstErr != nil {
		f.logger.Warn("rate limit backend back, but seeding it with the outage's counts failed; limiting locally until it answers",
			"seeded", seeded, "left", len(left), "error", firstErr)
		return left
	}
	if seeded > 0 {
		f.logger.Info("rate limit backend seeded with what this instance allowed during the outage", "keys", seeded)
	}
	return nil
}

// failed starts an outage, or keeps one going.
func (f *Fallback) failed(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.graceUntil.Store(0)
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
	if !f.probing {
		f.probing = true
		go f.probe()
	}
}

// probe pings the backend every interval until it answers and the outage
// is over, or the Fallback is closed.
func (f *Fallback) probe() {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		f.mu.Lock()
		if !f.degraded.Load() {
			f.probing = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		if f.seeding.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.interval)
		err := f.pinger.Ping(ctx)
		cancel()
		if err == nil {
			f.recovered()
		}
	}
}

// learnEpoch fetches the backend's epoch in the background once, while it
// answers, so that an outage can tell a backend that lost its data.
func (f *Fallback) learnEpoch() {
	if f.epocher == nil || f.walker == nil || f.epoch.Load() != nil || !f.learning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer f.learning.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), f.interval)
		defer cancel()
		if e, err := f.epocher.Epoch(ctx); err == nil {
			f.epoch.CompareAndSwap(nil, &e)
		}
	}()
}

func (f *Fallback) knownEpoch() string {
	if e := f.epoch.Load(); e != nil {
		return *e
	}
	return ""
}

// lostData reports whether the backend, answering again, holds other
// contents than before the outage, and remembers its new epoch.
func (f *Fallback) lostData() bool {
	if f.epocher == nil || f.walker == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.interval)
	defer cancel()
	e, err := f.epocher.Epoch(ctx)
	if err != nil {
		return false
	}
	known := f.epoch.Swap(&e)
	return known != nil && *known != e
}

// recovered ends an outage once the backend answered a ping: the noted
// keys' local windows go to the backend (and every open local window, if
// the backend lost its data), requests meanwhile passing both limits (see
// allowRecovering); then the outage ends and the grace begins.
func (f *Fallback) recovered() {
	f.mu.Lock()
	if !f.degraded.Load() || f.seeding.Load() {
		f.mu.Unlock()
		return
	}
	f.touchedMu.Lock()
	counts := f.touched
	f.touched = nil
	f.touchedMu.Unlock()
	f.seeding.Store(true)
	f.mu.Unlock()

	if f.lostData() {
		if counts == nil {
			counts = map[string]*outageCount{}
		}
		walked := 0
		f.walker.Walk(func(key string, n int, period time.Duration) {
			if _, ok := counts[key]; !ok {
				counts[key] = &outageCount{inWindow: n, period: period, last: time.Now()}
				walked++
			}
		})
		f.logger.Warn("rate limit backend came back without its data; giving it every open window this instance holds",
			"keys", len(counts), "untouched_during_outage", walked)
	}
	left := f.seedBackend(counts)

	f.mu.Lock()
	defer f.mu.Unlock()
	f.seeding.Store(false)
	if len(left) > 0 {
		// Still degraded: the keys wait for the next ping that answers.
		f.touchedMu.Lock()
		for key, c := range f.touched {
			left[key] = c
		}
		f.touched = left
		f.touchedMu.Unlock()
		return
	}
	f.endOutage()
}

// endOutage marks the backend healthy again and starts the grace; f.mu is
// held.
func (f *Fallback) endOutage() {
	f.graceUntil.Store(int64(time.Since(f.start) + f.grace))
	f.logger.Info("rate limit backend recovered", "mode", string(f.mode), "outage", time.Since(f.downedAt).Round(time.Millisecond).String())
	if f.onChange != nil {
		f.onChange(false)
	}
	f.degraded.Store(false)
}
