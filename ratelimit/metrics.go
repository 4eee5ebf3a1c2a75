package ratelimit

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts rate limit decisions per backend ("memory", "redis"),
// and of the refusals those a backend's limiter answered from its memory
// of earlier ones (Result.Remembered), and shows whether the shared
// backend is degraded. Keys are never labels: client IPs and token ids
// are unbounded and not for dashboards.
type Metrics struct {
	requests   *prometheus.CounterVec
	remembered *prometheus.CounterVec
	errors     *prometheus.CounterVec
	degraded   prometheus.Gauge
}

// NewMetrics creates the rate limit metrics and registers them with reg
// (nil: not registered, e.g. in tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_ratelimit_requests_total",
			Help: "Rate limit decisions by backend and result (allowed or limited).",
		}, []string{"backend", "result"}),
		remembered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_ratelimit_refusals_remembered_total",
			Help: "Refusals answered from the instance's memory of the backend's earlier refusal, without asking the backend; also counted as limited in keygate_ratelimit_requests_total.",
		}, []string{"backend"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_ratelimit_errors_total",
			Help: "Rate limit calls that failed, by backend.",
		}, []string{"backend"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_ratelimit_degraded",
			Help: "1 while the shared rate limit backend is down and the fallback mode applies.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.remembered, m.errors, m.degraded} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Instrument returns l counting its decisions under backend.
func (m *Metrics) Instrument(backend string, l Limiter) Limiter {
	return &instrumented{
		limiter:    l,
		allowed:    m.requests.WithLabelValues(backend, "allowed"),
		limited:    m.requests.WithLabelValues(backend, "limited"),
		remembered: m.remembered.WithLabelValues(backend),
		errors:     m.errors.WithLabelValues(backend),
	}
}

// SetDegraded sets the degraded gauge; it fits FallbackOptions.OnChange.
func (m *Metrics) SetDegraded(degraded bool) {
	if degraded {
		m.degraded.Set(1)
	} else {
		m.degraded.Set(0)
	}
}

type instrumented struct {
	limiter                              Limiter
	allowed, limited, remembered, errors prometheus.Counter
}

// Seed passes seeding on to the limiter when it takes it.
func (i *instrumented) Seed(ctx context.Context, key string, n int, period time.Duration) error {
	if s, ok := i.limiter.(Seeder); ok {
		return s.Seed(ctx, key, n, period)
	}
	return nil
}

// Ping passes a ping on to the limiter; one that cannot be pinged is
// taken to answer.
func (i *instrumented) Ping(ctx context.Context) error {
	if p, ok := i.limiter.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Epoch passes the question on to the limiter; one that cannot answer
// fails, and the Fallback then seeds as if nothing was lost.
func (i *instrumented) Epoch(ctx context.Context) (string, error) {
	if e, ok := i.limiter.(Epocher); ok {
		return e.Epoch(ctx)
	}
	return "", errors.New("ratelimit: the limiter has no epoch")
}

// Walk lists the limiter's windows when it can list them.
func (i *instrumented) Walk(fn func(key string, inWindow int, period time.Duration)) {
	if w, ok := i.limiter.(Walker); ok {
		w.Walk(fn)
	}
}

// Count reads the limiter's window when it can be read.
func (i *instrumented) Count(key string, period time.Duration) int {
	if c, ok := i.limiter.(Counter); ok {
		return c.Count(key, period)
	}
	return 0
}

func (i *instrumented) Allow(ctx context.Context, key string, limit int, period time.Duration) (Result, error) {
	res, err := i.limiter.Allow(ctx, key, limit, period)
	switch {
	case err != nil && keygate.ErrorCode(err) != keygate.EINVALID:
		i.errors.Inc()
	case err != nil:
	case res.Allowed:
		i.allowed.Inc()
	default:
		i.limited.Inc()
		if res.Remembered {
			i.remembered.Inc()
		}
	}
	return res, err
}
