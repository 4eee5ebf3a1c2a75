package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
)

// flaky is a shared backend that can be switched off: a Memory limiter
// that fails every call while down, counting the calls it gets.
type flaky struct {
	ratelimit.Limiter
	down  atomic.Bool
	calls atomic.Int64 // decisions asked
	pings atomic.Int64
}

func (f *flaky) Ping(context.Context) error {
	f.pings.Add(1)
	if f.down.Load() {
		return errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return nil
}

func (f *flaky) Allow(ctx context.Context, key string, limit int, period time.Duration) (ratelimit.Result, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return ratelimit.Result{}, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return f.Limiter.Allow(ctx, key, limit, period)
}

// leveledLog is a log the tests read line by line, by level.
type leveledLog struct{ logtest.Buffer }

// lines returns the lines logged at level, or every logged line for "".
func (l *leveledLog) lines(level string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level="+level) {
			out = append(out, line)
		}
	}
	return out
}

type fallbackTest struct {
	shared   *flaky
	local    *ratelimit.Memory // the Fallback's local limiter
	fallback *ratelimit.Fallback
	logs     *leveledLog
	mu       sync.Mutex
	changes  []bool
}

func newFallbackTest(t *testing.T, mode ratelimit.Mode, probe time.Duration) *fallbackTest {
	shared := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { shared.Close(); local.Close() })
	ft := &fallbackTest{shared: &flaky{Limiter: shared}, local: local, logs: &leveledLog{}}
	f, err := ratelimit.NewFallback(ft.shared, local, ratelimit.FallbackOptions{
		Mode:          mode,
		ProbeInterval: probe,
		Logger:        slog.New(slog.NewTextHandler(ft.logs, nil)),
		OnChange: func(degraded bool) {
			ft.mu.Lock()
			defer ft.mu.Unlock()
			ft.changes = append(ft.changes, degraded)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ft.fallback = f
	return ft
}

func (ft *fallbackTest) allow(t *testing.T, key string, limit int) (ratelimit.Result, error) {
	t.Helper()
	return ft.fallback.Allow(context.Background(), key, limit, time.Minute)
}

func (ft *fallbackTest) wantChanges(t *testing.T, want ...bool) {
	t.Helper()
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if len(ft.changes) != len(want) {
		t.Fatalf("OnChange calls = %v, want %v", ft.changes, want)
	}
	for i := range want {
		if ft.changes[i] != want[i] {
			t.Fatalf("OnChange calls = %v, want %v", ft.changes, want)
		}
	}
}

func TestFallbackLocalLimitsInMemoryWhileDown(t *testing.T) {
	ft := newFallbackTest(t, ratelimit.ModeLocal, time.Hour)
	ft.shared.down.Store(true)
	for i := range 3 {
		res, err := ft.allow(t, "ip:192.0.2.1", 3)
		if err != nil || !res.Allowed || res.Remaining != 2-i {
			t.Fatalf("request %d while down: %+v, %v; want allowed by the local limiter", i+1, res, err)
		}
	}
	for range 100 {
		res, err := ft.allow(t, "ip:192.0.2.1", 3)
		if err != nil || res.Allowed {
			t.Fatalf("request over the limit while down: %+v, %v; want refused", res, err)
		}
	}
	if !ft.fallback.Degraded() {
		t.Fatal("Degraded() = false while the shared backend is down")
	}
	if n := ft.shared.calls.Load(); n != 1 {
		t.Fatalf("shared backend called %d times while down, want 1 (no probe due yet)", n)
	}
	if warns := ft.logs.lines("WARN"); len(warns) != 1 || !strings.Contains(warns[0], "connection refused") {
		t.Fatalf("warnings = %q, want exactly one naming the cause", warns)
	}
	ft.wantChanges(t, true)
}

func TestFallbackRecoversWhenBackendAnswers(t *testing.T) {
	for _, mode := range []ratelimit.Mode{ratelimit.ModeLocal, ratelimit.ModeClosed} {
		t.Run(string(mode), func(t *testing.T) {
			ft := newFallbackTest(t, mode, 10*time.Millisecond)
			ft.shared.down.Store(true)
			ft.allow(t, "tok:1", 5)
			ft.shared.down.Store(false)

			deadline := time.Now().Add(5 * time.Second)
			for ft.fallback.Degraded() {
				if time.Now().After(deadline) {
					t.Fatal("still degraded long after the backend came back")
				}
				time.Sleep(time.Millisecond)
				ft.allow(t, "tok:1", 5)
			}
			// Back on the shared backend, which never saw the request made
			// during the outage.
			res, err := ft.allow(t, "tok:2", 5)
			if err != nil || !res.Allowed || res.Remaining != 4 {
				t.Fatalf("after recovery: %+v, %v", res, err)
			}
			if infos := ft.logs.lines("INFO"); len(infos) != 1 || !strings.Contains(infos[0], "recovered") {
				t.Fatalf("info logs = %q, want one recovery", infos)
			}
			if warns := ft.logs.lines("WARN"); len(warns) != 1 {
				t.Fatalf("warnings = %q, want one", warns)
			}
			ft.wantChanges(t, true, false)
		})
	}
}

func TestFallbackClosedRefusesWhileDown(t *testing.T) {
	ft := newFallbackTest(t, ratelimit.ModeClosed, time.Hour)
	ft.shared.down.Store(true)
	for range 10 {
		_, err := ft.allow(t, "ip:192.0.2.1", 3)
		if keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
			t.Fatalf("error = %v, want code %s", err, keygate.EUNAVAILABLE)
		}
	}
	if !ft.fallback.Degraded() {
		t.Fatal("Degraded() = false")
	}
	if n := ft.shared.calls.Load(); n != 1 {
		t.Fatalf("shared backend called %d times, want 1", n)
	}
}

func TestFallbackProbesAtMostOncePerInterval(t *testing.T) {
	const interval = 20 * time.Millisecond
	ft := newFallbackTest(t, ratelimit.ModeLocal, interval)
	ft.shared.down.Store(true)
	began := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(began) < 200*time.Millisecond {
				ft.allow(t, "ip:192.0.2.1", 1000000)
			}
		})
	}
	wg.Wait()
	// One request found the outage; after that no request asks the
	// backend, and a ping goes to it once per interval.
	if n := ft.shared.calls.Load(); n != 1 {
		t.Fatalf("shared backend asked %d decisions while down, want 1", n)
	}
	most := int64(time.Since(began)/interval) + 1
	if n := ft.shared.pings.Load(); n < 1 || n > most {
		t.Fatalf("shared backend pinged %d times in %s, want 1..%d", n, time.Since(began), most)
	}
	if warns := ft.logs.lines("WARN"); len(warns) != 1 {
		t.Fatalf("%d warnings, want 1", len(warns))
	}
}

func TestFallbackIgnoresCallerCancel(t *testing.T) {
	ft := newFallbackTest(t, ratelimit.ModeLocal, time.Hour)
	ft.shared.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ft.fallback.Allow(ctx, "ip:192.0.2.1", 1, time.Minute); err == nil {
		t.Fatal("no error for a canceled caller")
	}
	if ft.fallback.Degraded() {
		t.Fatal("a canceled caller marked the backend degraded")
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]ratelimit.Mode{"": ratelimit.ModeLocal, "local": ratelimit.ModeLocal, "closed": ratelimit.ModeClosed} {
		if got, err := ratelimit.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ratelimit.ParseMode("open"); keygate.ErrorCode(err) != keygate.EINVALID {
		t.Errorf("ParseMode(open) error = %v, want EINVALID", err)
	}
	if _, err := ratelimit.NewFallback(&flaky{}, nil, ratelimit.FallbackOptions{}); err == nil {
		t.Error("local mode without a local limiter accepted")
	}
	mem := ratelimit.NewMemory(ratelimit.MemoryOptions{SweepInterval: -1})
	if _, err := ratelimit.NewFallback(mem, mem, ratelimit.FallbackOptions{}); err == nil {
		t.Error("a shared limiter that cannot be pinged accepted")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	metrics, err := ratelimit.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ft := newFallbackTest(t, ratelimit.ModeLocal, time.Hour)
	mem := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	defer mem.Close()
	shared := metrics.Instrument("redis", ft.shared)
	f, _ := ratelimit.NewFallback(shared, metrics.Instrument("memory", mem), ratelimit.FallbackOptions{
		ProbeInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), OnChange: metrics.SetDegraded,
	})
	ctx := context.Background()
	for range 3 {
		f.Allow(ctx, "ip:192.0.2.1", 2, time.Minute) // redis: 2 allowed, 1 limited
	}
	ft.shared.down.Store(true)
	for range 4 {
		// Another key: the one above already holds Redis's two in memory
		// (TestLocalLimitingStartsFromWhatThisInstanceAllowed).
		f.Allow(ctx, "ip:192.0.2.2", 3, time.Minute) // redis: 1 error; memory: 3 allowed, 1 limited
	}
	f.Allow(ctx, "ip:192.0.2.1", 0, time.Minute) // invalid: counted nowhere

	got := gather(t, reg)
	want := map[string]float64{
		`keygate_ratelimit_requests_total{backend="redis",result="allowed"}`:  2,
		`keygate_ratelimit_requests_total{backend="redis",result="limited"}`:  1,
		`keygate_ratelimit_requests_total{backend="memory",result="allowed"}`: 3,
		`keygate_ratelimit_requests_total{backend="memory",result="limited"}`: 1,
		`keygate_ratelimit_errors_total{backend="redis"}`:                     1,
		`keygate_ratelimit_errors_total{backend="memory"}`:                    0,
		`keygate_ratelimit_refusals_remembered_total{backend="redis"}`:        0,
		`keygate_ratelimit_refusals_remembered_total{backend="memory"}`:       0,
		`keygate_ratelimit_degraded`:                                          1,
	}
	if len(got) != len(want) {
		t.Errorf("series = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// gather returns every series in reg as `name{labels}` → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
