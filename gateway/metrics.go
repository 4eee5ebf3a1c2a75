package gateway

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts gateway requests by API and outcome. Labels are bounded:
// API names and error codes, never a token, token id or client address.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the gateway's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_requests_total",
			Help: "Requests through the gateway by API and outcome (ok or the refusal's error code).",
		}, []string{"api", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keygate_request_duration_seconds",
			Help:    "Time from receiving a request to finishing its answer, upstream included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// apiMetrics are one API's series, resolved once: a request looks up no
// label values, only its outcome's counter (kept after first use).
type apiMetrics struct {
	duration prometheus.Observer
	requests *prometheus.CounterVec // curried with the API's name
	ok       prometheus.Counter
	refused  sync.Map // error code -> prometheus.Counter
}

// forAPI returns the series of the API named api.
func (m *Metrics) forAPI(api string) *apiMetrics {
	requests := m.requests.MustCurryWith(prometheus.Labels{"api": api})
	return &apiMetrics{
		duration: m.duration.WithLabelValues(api),
		requests: requests,
		ok:       requests.WithLabelValues("ok"),
	}
}

// observe counts one request by outcome (code; "" is ok) and its time.
func (m *apiMetrics) observe(code string, d time.Duration) {
	counter := m.ok
	if code != "" {
		c, ok := m.refused.Load(code)
		if !ok {
			c, _ = m.refused.LoadOrStore(code, m.requests.WithLabelValues(code))
		}
		counter = c.(prometheus.Counter)
	}
	counter.Inc()
	m.duration.Observe(d.Seconds())
}

// RegisterTokenCacheMetrics exports the token cache's lookups by result,
// its size and its change feed on reg: the hit rate is hits / (hits +
// misses), and while following is 0 every lookup is a miss.
func RegisterTokenCacheMetrics(reg prometheus.Registerer, t *Tokens) error {
	collectors := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keygate_token_cache_hits_total",
			Help: "Token lookups answered from the verified-token cache.",
		}, func() float64 { hits, _, _ := t.CacheStats(); return float64(hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keygate_token_cache_misses_total",
			Help: "Token lookups that read the store: not cached, or older than cache.ttl.",
		}, func() float64 { _, misses, _ := t.CacheStats(); return float64(misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keygate_token_cache_entries",
			Help: "Verified tokens the cache holds (at most cache.max_entries).",
		}, func() float64 { _, _, n := t.CacheStats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keygate_token_cache_following",
			Help: "1 while the cache follows the store's change feed and cached tokens answer; 0 while the feed starts or is being restarted, when every lookup reads the store.",
		}, func() float64 {
			if t.Following() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keygate_token_cache_feed_restarts_total",
			Help: "Times the cache's change feed was started again after it stopped.",
		}, func() float64 { return float64(t.FeedRestarts()) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// RegisterUsageMetrics exports whether usage writes keep up: requests
// counted and not yet written (what a crash would lose), and failed writes.
func RegisterUsageMetrics(reg prometheus.Registerer, u *Usage) error {
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keygate_usage_unwritten_requests",
			Help: "Requests counted in memory and not yet written to the store: what a crash would lose of usage.",
		}, func() float64 { return float64(u.Unwritten()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keygate_usage_write_failures_total",
			Help: "Usage or last-used batch writes that failed (each is tried again).",
		}, func() float64 { return float64(u.WriteFailures()) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
