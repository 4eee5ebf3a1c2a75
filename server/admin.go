package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keygate/keygate/audit"
)

// adminHandler is keygate's own listener: health, metrics, JWKS, the
// verify API, forward-auth by API name, and the dashboard, management API
// and OAuth server.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /.well-known/jwks.json", s.signer.JWKSHandler())
	// The verify API and the management API share one budget of failed
	// admin keys per address (adminkeys.go).
	adminKeys := s.newAdminKeyFailures()
	mux.Handle("POST /api/v1/verify", adminKeys.guard(gatewayVerify(s)))
	mux.HandleFunc("GET /_keygate/auth/{api}", func(w http.ResponseWriter, r *http.Request) {
		g := s.gateways[r.PathValue("api")]
		if g == nil {
			http.NotFound(w, r)
			return
		}
		g.ForwardAuth(w, r)
	})
	s.mountApplications(mux, adminKeys)
	// Each request carries its client address and user agent for the
	// audit log.
	return withDeadline(audit.Requests(mux, s.clientAddr), s.cfg.Listeners.AdminWriteTimeout)
}

// withDeadline ends each request's context shortly before its answer can
// no longer be written (writeTimeout, the admin listener's): every store
// call made for it, the ones without a deadline of their own included,
// gives up in time to answer 503, instead of holding a connection and a
// database slot for a client that would never see the answer.
func withDeadline(h http.Handler, writeTimeout time.Duration) http.Handler {
	if writeTimeout <= 0 {
		return h
	}
	d := writeTimeout - min(writeTimeout/10, time.Second)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// readyz answers 200 when the database answers, 503 otherwise, with each
// dependency's state in the body. A degraded rate limiter in local mode is
// reported but still ready: requests are served. So is a token cache whose
// change feed is not following: every lookup then reads the database,
// slower but not wrong.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "rate_limiter": s.limiter.Status(), "token_cache": s.tokens.FeedState()}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		checks["database"] = "unreachable"
		status = http.StatusServiceUnavailable
	}
	if s.limiter.fallback != nil && s.limiter.fallback.Degraded() && s.limiter.fallback.Mode() == "closed" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	state := "ok"
	if status != http.StatusOK {
		state = "unavailable"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": state, "checks": checks})
}
