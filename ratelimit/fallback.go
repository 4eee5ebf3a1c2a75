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
	// ModeClosed refuses rate-limited requests with EUNAVAILABLE (503 in
	// the API's preset) rather than limit them less strictly.
	ModeClosed Mode = "closed"
)

// DefaultProbeInterval is how often a Fallback retries a backend that
// failed, when FallbackOptions leaves it unset.
const DefaultProbeInterval = time.Second

// ParseMode reads a mode from config; "" is ModeLocal.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeLocal:
		return ModeLocal, nil
	case ModeClosed:
		return ModeClosed, nil
	}
	return "", keygate.Errorf(keygate.EINVALID, "Rate limit fallback mode must be %q or %q, got %q.", ModeLocal, ModeClosed, s)
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
	nextProbe atomic.Int64 // nanoseconds since start

	mu       sync.Mutex // orders outage transitions, their logs and callbacks
	downedAt time.Time
}

var _ Limiter = (*Fallback)(nil)

// NewFallback returns a Limiter that asks shared and, while shared fails,
// local (ModeLocal) or nobody (ModeClosed; local may then be nil).
func NewFallback(shared, local Limiter, opts FallbackOptions) (*Fallback, error) {
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	if mode == ModeLocal && local == nil {
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
	}
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
	if err := Validate(limit, period); err != nil {
		return Result{}, err
	}
	if f.degraded.Load() && !f.claimProbe() {
		return f.allowDegraded(ctx, key, limit, period)
	}
	res, err := f.shared.Allow(ctx, key, limit, period)
	if err == nil {
		if f.degraded.Load() {
			f.recovered()
		}
		return res, nil
	}
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about the backend.
		return Result{}, err
	}
	f.failed(err)
	return f.allowDegraded(ctx, key, limit, period)
}

func (f *Fallback) allowDegraded(ctx context.Context, key string, limit int, period time.Duration) (Result, error) {
	if f.mode == ModeClosed {
		return Result{}, keygate.Errorf(keygate.EUNAVAILABLE, "Rate limiting is unavailable.")
	}
	return f.local.Allow(ctx, key, limit, period)
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
	if f.mode == ModeClosed {
		msg = "rate limit backend unavailable, refusing rate-limited requests"
	}
	f.logger.Warn(msg, "mode", string(f.mode), "error", err)
	if f.onChange != nil {
		f.onChange(true)
	}
}

func (f *Fallback) recovered() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.degraded.Load() {
		return
	}
	f.degraded.Store(false)
	f.logger.Info("rate limit backend recovered", "mode", string(f.mode), "outage", time.Since(f.downedAt).Round(time.Millisecond).String())
	if f.onChange != nil {
		f.onChange(false)
	}
}
