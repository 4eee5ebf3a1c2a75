package ratelimit_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/ratelimit"
)

// In the closed mode the Fallback answers nothing while Redis is down; a
// Backstop over it then limits in the memory limiter the Fallback mirrors
// into, so a key's window goes on from what Redis allowed, and the
// request past the limit is refused with a Retry-After.
func TestBackstopLimitsInMemoryWhileClosedFallbackIsDown(t *testing.T) {
	ft := newFallbackTest(t, ratelimit.ModeClosed, time.Hour)
	b := ratelimit.NewBackstop(ft.fallback, ft.local, ratelimit.BackstopOptions{What: "test pages", Logger: slog.New(slog.DiscardHandler)})
	allow := func() (ratelimit.Result, error) {
		return b.Allow(context.Background(), "ip:192.0.2.1", 30, time.Minute)
	}
	for i := 1; i <= 30; i++ {
		if i == 21 {
			ft.shared.down.Store(true)
		}
		res, err := allow()
		if err != nil || !res.Allowed || res.Remaining != 30-i {
			t.Fatalf("request %d (backend down: %v): %+v, %v; want allowed, %d left", i, i > 20, res, err, 30-i)
		}
	}
	if !ft.fallback.Degraded() {
		t.Fatal("the Fallback did not notice its backend was down")
	}
	res, err := allow()
	if err != nil || res.Allowed || res.RetryAfter < time.Second {
		t.Fatalf("request 31, backend down: %+v, %v; want refused with a Retry-After", res, err)
	}
}

// A Backstop logs an outage of its shared limiter once as a warning when
// it begins and once at info when the limiter answers again, with the
// outage's length; the requests in between log at debug only, and a
// second outage is logged again.
func TestBackstopLogsAnOutageOnce(t *testing.T) {
	shared := &flaky{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	memory := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { shared.Limiter.(*ratelimit.Memory).Close(); memory.Close() })
	logs := &leveledLog{}
	now := time.Now()
	b := ratelimit.NewBackstop(shared, memory, ratelimit.BackstopOptions{
		What:   "test pages",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return now },
	})
	allow := func() {
		t.Helper()
		if res, err := b.Allow(context.Background(), "ip:192.0.2.1", 100, time.Minute); err != nil || !res.Allowed {
			t.Fatalf("request: %+v, %v", res, err)
		}
	}
	expect := func(what string, warn, info, debug int) {
		t.Helper()
		if w, i, d := logs.lines("WARN"), logs.lines("INFO"), logs.lines("DEBUG"); len(w) != warn || len(i) != info || len(d) != debug {
			t.Fatalf("%s: warnings %q, infos %q, debug %q; want %d, %d, %d", what, w, i, d, warn, info, debug)
		}
	}

	allow()
	expect("backend up", 0, 0, 0)
	shared.down.Store(true)
	allow()
	allow()
	allow()
	expect("three requests, backend down", 1, 0, 2)
	if w := logs.lines("WARN")[0]; !strings.Contains(w, `msg="rate limiter unavailable for test pages; limiting them in memory on this instance until it answers"`) ||
		!strings.Contains(w, "connection refused") {
		t.Fatalf("warning %q does not say what is limited how, and why", w)
	}
	shared.down.Store(false)
	now = now.Add(90 * time.Second)
	allow()
	allow()
	expect("two requests, backend back", 1, 1, 2)
	if i := logs.lines("INFO")[0]; !strings.Contains(i, `msg="rate limiter answers again for test pages" outage=1m30s`) {
		t.Fatalf("info %q does not say how long the outage lasted", i)
	}
	shared.down.Store(true)
	allow()
	expect("a second outage", 2, 1, 2)
	if logs := logs.lines(""); strings.Contains(strings.Join(logs, "\n"), "192.0.2.1") {
		t.Fatalf("a key was logged: %q", logs)
	}
}

// A request whose caller gave up says nothing about the shared limiter:
// the Backstop answers its error and neither logs an outage nor counts
// the request in memory.
func TestBackstopIgnoresCallerCancel(t *testing.T) {
	shared := &flaky{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	memory := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { shared.Limiter.(*ratelimit.Memory).Close(); memory.Close() })
	shared.down.Store(true)
	logs := &leveledLog{}
	b := ratelimit.NewBackstop(shared, memory, ratelimit.BackstopOptions{What: "test pages", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := b.Allow(ctx, "ip:192.0.2.1", 3, time.Minute); err == nil {
		t.Fatalf("cancelled request: %+v, want the shared limiter's error", res)
	}
	if w := logs.lines("WARN"); len(w) != 0 {
		t.Fatalf("a cancelled request logged an outage: %q", w)
	}
	if n := memory.Count("ip:192.0.2.1", time.Minute); n != 0 {
		t.Fatalf("a cancelled request was counted in memory: %d", n)
	}
}

// With the closed Fallback's local mode as its memory limiter, a Backstop
// leaves Redis no blind spot: what it counted in memory during the outage
// is given to the backend when it answers again, with what the mirror
// held from before, so the key's window does not start over there.
func TestBackstopOverTheFallbacksLocalModeGivesTheBackendTheOutagesCounts(t *testing.T) {
	s := &seeds{got: map[string]int{}, ch: make(chan struct{}, 10)}
	shared := &flaky{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { shared.Limiter.(*ratelimit.Memory).Close(); local.Close() })
	f, err := ratelimit.NewFallback(seedable{shared, s}, local, ratelimit.FallbackOptions{
		Mode: ratelimit.ModeClosed, ProbeInterval: time.Millisecond, RecoveryGrace: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	inMemory, err := f.WithMode(ratelimit.ModeLocal)
	if err != nil {
		t.Fatal(err)
	}
	b := ratelimit.NewBackstop(f, inMemory, ratelimit.BackstopOptions{What: "test pages", Logger: slog.New(slog.DiscardHandler)})
	if got := allowed(t, b, "ip:192.0.2.1", 30, 20); got != 20 {
		t.Fatalf("allowed %d with the backend up, want 20", got)
	}
	shared.down.Store(true)
	if got := allowed(t, b, "ip:192.0.2.1", 30, 20); got != 10 {
		t.Fatalf("allowed %d with the backend down, want the 10 left of 30", got)
	}
	shared.down.Store(false)
	waitRecovered(t, f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got["ip:192.0.2.1"] != 30 || len(s.got) != 1 {
		t.Fatalf("seeded %v, want ip:192.0.2.1 30 (its whole local window)", s.got)
	}
}
