package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// usageBatches keeps what Usage writes.
type usageBatches struct {
	mu     sync.Mutex
	counts []keygate.UsageCount
}

func (u *usageBatches) TouchTokens(context.Context, map[string]time.Time) error { return nil }

func (u *usageBatches) RecordUsage(_ context.Context, _ string, counts []keygate.UsageCount) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts = append(u.counts, counts...)
	return nil
}

// silentServer accepts connections and never answers, so a call to it
// (Redis, an upstream's TLS handshake) stays in flight.
func silentServer(t *testing.T) string {
	addr, _ := silentServerAccepting(t)
	return addr
}

// silentServerAccepting is silentServer with a channel that receives once
// per accepted connection.
func silentServerAccepting(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	accepted := make(chan struct{}, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// A client that goes away while its request waits on Redis is a client
// cancel: no ERROR line, no answer written, and usage counts the request
// without counting an error (it is not the API's failure, nor a 503).
func TestClientLeavingDuringARateLimitCallIsACancelNotAnOutage(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	redisAddr, redisAccepted := silentServerAccepting(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	batches := &usageBatches{}
	usage := gateway.NewUsage(batches, gateway.UsageOptions{LastUsedInterval: time.Hour, CountsInterval: time.Hour, Logger: logger})
	g, err := gateway.New(gateway.Config{API: f.events, Tokens: f.tokens, Limiter: redislimit.New(rdb, redislimit.Options{}), Usage: usage, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := f.tokens.Lookup(context.Background(), keygate.DigestToken(secret)); err != nil {
		t.Fatal(err) // cached, so the request's only wait is Redis
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/api/v1/attendees", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+secret)
	rec := httptest.NewRecorder()
	go func() {
		<-redisAccepted // the rate limit call is in flight
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	g.ServeHTTP(rec, req)
	t.Logf("request whose client left during the Redis call returned after %v", time.Since(start).Round(time.Millisecond))
	if rec.Body.Len() != 0 {
		t.Errorf("an answer was written to a client that left: %d %s", rec.Code, rec.Body)
	}
	if err := usage.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(batches.counts) != 1 || batches.counts[0].Requests != 1 || batches.counts[0].Errors != 0 {
		t.Errorf("usage = %+v, want one request and no error", batches.counts)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a client leaving was logged as a failure:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// An HTTPS upstream that accepts the connection and never completes the
// TLS handshake answers the preset's 504 after the handshake timeout,
// instead of holding the request until the client gives up.
func TestUpstreamStalledInTLSHandshakeIsAGatewayTimeout(t *testing.T) {
	old := gateway.SetUpstreamTLSHandshakeTimeout(300 * time.Millisecond)
	t.Cleanup(func() { gateway.SetUpstreamTLSHandshakeTimeout(old) })
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	api := menusAPI("https://" + silentServer(t)) // accepts, never speaks
	g, err := gateway.New(gateway.Config{API: api, Tokens: f.tokens})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := httptest.NewRequest("GET", "/v2/products", nil).WithContext(ctx)
	req.Header.Set("X-Token", secret)
	rec := httptest.NewRecorder()
	start := time.Now()
	g.ServeHTTP(rec, req)
	took := time.Since(start)
	t.Logf("stalled TLS handshake answered %d after %v (timeout 300ms)", rec.Code, took.Round(time.Millisecond))
	if rec.Code != 504 || rec.Body.String() != `{"detail": "Gateway Timeout"}` {
		t.Errorf("got %d %s, want 504 in the preset's shape", rec.Code, rec.Body)
	}
	if took > 3*time.Second {
		t.Errorf("the request waited %v: no handshake timeout", took)
	}
}
