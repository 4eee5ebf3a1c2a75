package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
)

// BenchmarkAuthorize measures the verify path of a request with a cached
// token: header parse, checksum, cache hit, expiry, rate limit, scope and
// entitlement checks. No storage is touched after the first iteration.
func BenchmarkAuthorize(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	u, _ := url.Parse("/api/v1/attendees?page=2")
	h := http.Header{"Authorization": {"Bearer " + secret}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			// The token's 60/min limit refuses most iterations; refusals
			// cost the same path, so they are measured too.
			i++
			_, err := f.eventsGW.Authorize(ctx, gateway.Request{Method: "GET", URL: u, Header: h, ClientIP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})})
			if err != nil && keygate.ErrorCode(err) != keygate.ERATELIMITED {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthorizeNoLimit isolates token verification from rate limiting:
// the menus API has no limits.
func BenchmarkAuthorizeNoLimit(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	u, _ := url.Parse("/v2/products?states=California&page=1")
	h := http.Header{"X-Token": {secret}}
	ctx := context.Background()
	req := gateway.Request{Method: "GET", URL: u, Header: h, ClientIP: netip.MustParseAddr("203.0.113.7")}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.menusGW.Authorize(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProxy measures a whole request through the reverse proxy to a
// local upstream, identity JWT signing included.
func BenchmarkProxy(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	srv := httptest.NewServer(f.menusGW)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+"/v2/products?states=California", nil)
			req.Header.Set("X-Token", secret)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkProxyTracing compares one gateway built twice: with tracing
// off (nil, as by default) and on with every request sampled, a server and
// an upstream span per request batched to an exporter that drops them.
// The difference is the cost of tracing; "off" against BenchmarkProxy of
// a build without tracing shows that off costs nothing.
func BenchmarkProxyTracing(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	for _, tc := range []struct {
		name    string
		tracing *gateway.Tracing
	}{
		{"off", nil},
		{"on", &gateway.Tracing{Tracer: tp.Tracer("bench")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, err := gateway.New(gateway.Config{API: f.menus, Tokens: f.tokens, Signer: f.signer, Tracing: tc.tracing})
			if err != nil {
				b.Fatal(err)
			}
			benchmarkProxyTo(b, g, secret)
		})
	}
}

// BenchmarkProxyObserved is BenchmarkProxy with what `keygate serve`
// adds to every request: Prometheus metrics and usage counts (written
// once, after the run). The difference to BenchmarkProxy is their cost.
func BenchmarkProxyObserved(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	metrics, err := gateway.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	usage := gateway.NewUsage(f.store, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour})
	defer usage.Close(context.Background())
	g, err := gateway.New(gateway.Config{API: f.menus, Tokens: f.tokens, Signer: f.signer, Metrics: metrics, Usage: usage})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkProxyTo(b, g, secret)
}

func benchmarkProxyTo(b *testing.B, h http.Handler, secret string) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+"/v2/products?states=California", nil)
			req.Header.Set("X-Token", secret)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// benchmarkRefusal measures refusing secret through the menus API's
// handler, as a client sees it (the preset's 404 rendered into a
// recorder), without rate limits, so what differs is the token check
// alone.
func benchmarkRefusal(b *testing.B, secret string, negativeTTL time.Duration) {
	f := newFixture(b)
	tokens := gateway.NewTokens(f.store, gateway.TokensOptions{NegativeTTL: negativeTTL})
	gw, err := gateway.New(gateway.Config{API: f.menus, Tokens: tokens, Signer: f.signer})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/v2/products?states=California&page=1", nil)
		req.Header.Set("X-Token", secret)
		for pb.Next() {
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}

// BenchmarkRefuseUnknownToken refuses a well-formed token with a valid
// checksum that no one has: after the first lookup it is answered from
// the negative cache. Compare with BenchmarkRefuseBadChecksum, refused
// before any cache or store (the goal: at least 0.8× its throughput).
func BenchmarkRefuseUnknownToken(b *testing.B) {
	benchmarkRefusal(b, keygate.GenerateTokenSecret("cm_live_"), 0)
}

// BenchmarkRefuseUnknownTokenUncached is the same with the negative cache
// off (cache.negative_ttl: 0s): a SQLite lookup per request.
func BenchmarkRefuseUnknownTokenUncached(b *testing.B) {
	benchmarkRefusal(b, keygate.GenerateTokenSecret("cm_live_"), -1)
}

// BenchmarkRefuseBadChecksum refuses a token whose checksum is wrong.
func BenchmarkRefuseBadChecksum(b *testing.B) {
	secret := keygate.GenerateTokenSecret("cm_live_")
	last := byte('A')
	if secret[len(secret)-1] == last {
		last = 'B'
	}
	benchmarkRefusal(b, secret[:len(secret)-1]+string(last), 0)
}

// BenchmarkForwardAuth measures one forward-auth check as nginx's
// auth_request sends it: GET /_keygate/auth from a proxy on the same
// machine with the original method and URI in X-Original-* headers and
// the client's token, answered 200 with the identity headers and no body.
func BenchmarkForwardAuth(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	srv := httptest.NewServer(f.menusGW)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+"/_keygate/auth", nil)
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("X-Original-URI", "/v2/products?states=California")
			req.Header.Set("X-Token", secret)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get(keygate.HeaderIdentity) == "" {
				b.Fatalf("status %d, identity %q", resp.StatusCode, resp.Header.Get(keygate.HeaderIdentity))
			}
		}
	})
}
