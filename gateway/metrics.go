package gateway

import (
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

func (m *Metrics) observe(api, code string, d time.Duration) {
	outcome := code
	if outcome == "" {
		outcome = "ok"
	}
	m.requests.WithLabelValues(api, outcome).Inc()
	m.duration.WithLabelValues(api).Observe(d.Seconds())
}
