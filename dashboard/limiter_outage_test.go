package dashboard_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/dashboard"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
)

// swappedLimiter is whichever limiter the test has put in: Redis that is
// down, or one that answers.
type swappedLimiter struct {
	l atomic.Pointer[ratelimit.Limiter]
}

func (s *swappedLimiter) use(l ratelimit.Limiter) { s.l.Store(&l) }

func (s *swappedLimiter) Allow(ctx context.Context, key string, limit int, period time.Duration) (ratelimit.Result, error) {
	return (*s.l.Load()).Allow(ctx, key, limit, period)
}

// While the invitation pages' rate limiter is down (Redis at an address
// nobody listens on), the pages are served, limited by the memory limiter,
// and the outage is logged once as a warning when it begins and once at
// info when the limiter answers again; the requests in between log at
// debug only. A second outage is logged again.
func TestInvitationPagesLogALimiterOutageOnce(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	client, err := redislimit.Connect(redislimit.Connection{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	down := redislimit.New(client, redislimit.Options{})
	up := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	memory := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { up.Close(); memory.Close() })
	limiter := &swappedLimiter{}
	limiter.use(down)
	logs := &logtest.Buffer{}
	now := time.Now()
	h := dashboard.New(dashboard.Deps{
		Store: store, Sessions: &session.Manager{Sessions: store, Users: store},
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Limiter: limiter, MemoryLimiter: memory, Now: func() time.Time { return now },
	})
	secret := strings.Repeat("A", 43)
	visit := func() *http.Response {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/invitations/"+secret, nil))
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "This invitation is not valid") {
			t.Fatalf("invitation page: %d %.200q", rec.Code, rec.Body)
		}
		return rec.Result()
	}
	// logged returns, by level, the lines about the limiter logged since
	// the last call.
	seen := 0
	logged := func() map[string][]string {
		t.Helper()
		all := logs.String()
		lines := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(all[seen:]), "\n") {
			var rec struct{ Level, Msg string }
			if line == "" || json.Unmarshal([]byte(line), &rec) != nil || !strings.Contains(rec.Msg, "rate limiter") {
				continue
			}
			lines[rec.Level] = append(lines[rec.Level], rec.Msg)
		}
		seen = len(all)
		return lines
	}
	count := func(lines map[string][]string) map[string]int {
		n := map[string]int{}
		for level, msgs := range lines {
			n[level] = len(msgs)
		}
		return n
	}
	expect := func(what string, want map[string]int) {
		t.Helper()
		got := logged()
		if len(count(got)) != len(want) {
			t.Errorf("%s: logged %q, want %v lines by level", what, got, want)
			return
		}
		for level, n := range want {
			if len(got[level]) != n {
				t.Errorf("%s: logged %q, want %v lines by level", what, got, want)
			}
		}
	}

	for i := 1; i <= 3; i++ {
		h := visit().Header
		if limit, left := h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"]; len(limit) != 1 || limit[0] != "30" || len(left) != 1 || left[0] != strconv.Itoa(30-i) {
			t.Errorf("visit %d with the limiter down: X-RateLimit-Limit %q, remaining %q; want limited in memory", i, limit, left)
		}
	}
	if got := logged(); len(got["WARN"]) != 1 || len(got["DEBUG"]) != 2 || len(got) != 2 ||
		got["WARN"][0] != "rate limiter unavailable for invitation pages; limiting them in memory on this instance until it answers" {
		t.Errorf("three visits, limiter down: logged %q", got)
	}

	limiter.use(up)
	now = now.Add(90 * time.Second)
	for range 2 {
		if got := visit().Header["X-RateLimit-Limit"]; len(got) != 1 || got[0] != "30" {
			t.Errorf("with the limiter back, X-RateLimit-Limit %q, want 30", got)
		}
	}
	all := logs.String()
	expect("two visits, limiter back", map[string]int{"INFO": 1})
	if !strings.Contains(all, `"outage":"1m30s"`) {
		t.Errorf("the line for the limiter's return does not say how long it was down: %s", all)
	}

	limiter.use(down)
	visit()
	visit()
	expect("a second outage", map[string]int{"WARN": 1, "DEBUG": 1})
	if all := logs.String(); strings.Contains(all, secret) {
		t.Errorf("an invitation's secret was logged: %s", all)
	}
}

// When Redis (KEYGATE_TEST_REDIS_URL) becomes unreachable in the closed
// mode, an address's invitation pages go on counting in memory from where
// Redis left them: the Redis fallback mirrors every request Redis allowed
// into the memory limiter keygate hands the pages, so an outage gives
// nobody a fresh window. Redis is made unreachable by closing the only
// client that reaches it; its keys expire with the window.
func TestInvitationPagesCountOnInMemoryWhenRedisGoesDown(t *testing.T) {
	client, err := redislimit.Connect(redislimit.Connection{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "keygate:test:invitations:" + rand.Text() + ":"
	memory := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { memory.Close() })
	fallback, err := ratelimit.NewFallback(redislimit.New(client, redislimit.Options{Prefix: prefix}), memory,
		ratelimit.FallbackOptions{Mode: ratelimit.ModeClosed, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fallback.Close() })
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := dashboard.New(dashboard.Deps{
		Store: store, Sessions: &session.Manager{Sessions: store, Users: store},
		Logger: slog.New(slog.DiscardHandler), Limiter: fallback, MemoryLimiter: memory,
	})
	visit := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/invitations/"+strings.Repeat("A", 43), nil))
		return rec
	}
	for i := 1; i <= 30; i++ {
		if i == 21 {
			client.Close()
		}
		rec := visit()
		if left := rec.Header()["X-RateLimit-Remaining"]; rec.Code != http.StatusNotFound || len(left) != 1 || left[0] != strconv.Itoa(30-i) {
			t.Fatalf("visit %d (Redis down: %v): %d, remaining %q; want %d", i, i > 20, rec.Code, left, 30-i)
		}
	}
	if !fallback.Degraded() {
		t.Fatal("the fallback did not notice Redis was unreachable")
	}
	if rec := visit(); rec.Code != http.StatusTooManyRequests || len(rec.Header()["Retry-After"]) != 1 {
		t.Errorf("31st visit, Redis down: %d %v", rec.Code, rec.Header())
	}
}

// A client that leaves while the invitation pages' limiter is asked (its
// request's context ends, so the limiter call fails) is no failure of the
// limiter nor of the dashboard: the dashboard logs it at debug only and
// answers nothing, as nobody reads an answer.
func TestInvitationPageOfAClientGoneLogsNothingAboveDebug(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	client, err := redislimit.Connect(redislimit.Connection{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	memory := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { memory.Close() })
	logs := &logtest.Buffer{}
	h := dashboard.New(dashboard.Deps{
		Store: store, Sessions: &session.Manager{Sessions: store, Users: store},
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Limiter: redislimit.New(client, redislimit.Options{}), MemoryLimiter: memory,
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/invitations/"+strings.Repeat("A", 43), nil).WithContext(ctx))
	if rec.Body.Len() != 0 {
		t.Errorf("answered a client that is gone: %d %.200q", rec.Code, rec.Body)
	}
	gone := false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level != "DEBUG" {
			t.Errorf("a client gone logged at %s: %s", rec.Level, line)
		}
		gone = gone || rec.Msg == "client went away while the invitation pages' rate limit was checked"
	}
	if !gone {
		t.Errorf("no debug line for the client gone:\n%s", logs.String())
	}
}
