package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/tcptest"
	"github.com/keygate/keygate/sqlite"
)

// silentListener accepts connections and reads whatever comes, never
// answering: a Redis or PostgreSQL behind a network that drops replies,
// or a hung process.
func silentListener(t *testing.T) string {
	t.Helper()
	return tcptest.Serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// timedFetch is fetch with the time it took.
func timedFetch(t *testing.T, url string) (int, string, http.Header, time.Duration) {
	t.Helper()
	start := time.Now()
	status, body, h := fetch(t, url)
	return status, body, h, time.Since(start)
}

// A Redis that accepts connections and never answers costs a rate-limit
// decision at most about rate_limiter.redis_timeout (dialing: twice it),
// once; until a probe finds it answering, the mode's answer comes at
// once: local limits in memory with the headers, closed answers the
// preset's 503, /readyz says which.
func TestSilentRedisIsBoundedByRedisTimeout(t *testing.T) {
	redisAddr := silentListener(t)
	for _, c := range []struct {
		mode, status, body, ready string
	}{
		{"local", "200", "", "in-memory limiter (local mode)"},
		{"closed", "503", `{"message": "Service Unavailable."}`, "closed mode"},
	} {
		r := start(t, echoUpstream(t).URL, fmt.Sprintf("{backend: redis, redis_url: 'redis://%s/0', redis_timeout: 200ms, on_redis_failure: %s}", redisAddr, c.mode))
		var slowest time.Duration
		for i := range 5 {
			status, body, h, took := timedFetch(t, "http://"+r.events+"/p/abc")
			slowest = max(slowest, took)
			if fmt.Sprint(status) != c.status || (c.body != "" && body != c.body) {
				t.Errorf("%s mode, request %d: %d %s, want %s %s", c.mode, i+1, status, body, c.status, c.body)
			}
			if c.mode == "local" && h.Get("X-RateLimit-Remaining") != fmt.Sprint(9-i) {
				t.Errorf("%s mode, request %d: X-RateLimit-Remaining %q", c.mode, i+1, h.Get("X-RateLimit-Remaining"))
			}
		}
		status, body, _, readyTook := timedFetch(t, "http://"+r.admin+"/readyz")
		t.Logf("Redis silent, redis_timeout 200ms, %s mode: slowest of 5 requests %v; /readyz %d after %v", c.mode, slowest.Round(time.Millisecond), status, readyTook.Round(time.Millisecond))
		if slowest > 1500*time.Millisecond || readyTook > 1500*time.Millisecond {
			t.Errorf("%s mode: a request took %v, /readyz %v; want about redis_timeout (dial 400ms + read 200ms)", c.mode, slowest, readyTook)
		}
		if !strings.Contains(body, c.ready) {
			t.Errorf("%s mode: /readyz %d %s, want %q", c.mode, status, body, c.ready)
		}
	}
}

// A client sending its request headers a byte at a time (slowloris) is
// cut off after listeners.read_header_timeout on every listener: the
// APIs' (gateway, forward-auth, verify) and the admin listener.
func TestSlowHeadersAreCutOffOnEveryListener(t *testing.T) {
	admin, events := startWithListeners(t, "{read_header_timeout: 500ms}")
	for _, l := range []struct{ name, addr, path string }{
		{"API", events, "/p/abc"},
		{"forward-auth", events, "/_keygate/auth"},
		{"admin", admin, "/healthz"},
	} {
		c, err := net.Dial("tcp", l.addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		head := "GET " + l.path + " HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
		sent := 0
		for ; sent < len(head); sent++ {
			if _, err := c.Write([]byte{head[sent]}); err != nil {
				break
			}
			// Has keygate closed it? A read that gets anything but a
			// timeout says so.
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(make([]byte, 512)); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					break
				}
			}
		}
		took := time.Since(start)
		c.Close()
		t.Logf("%s listener: slow headers cut off after %v, %d bytes sent (read_header_timeout 500ms)", l.name, took.Round(time.Millisecond), sent)
		if sent == len(head) || took > 2*time.Second {
			t.Errorf("%s listener: a client sending a header byte every 100ms was served for %v (%d bytes), want cut off after 500ms", l.name, took, sent)
		}
	}
}

// Shutdown with a request whose upstream never finishes (a stream that
// went quiet) returns when its grace ends, and the request is ended
// too: its client sees the connection close, nothing keeps waiting on the
// upstream after keygate has stopped, and the pending last-used time is
// still written.
func TestShutdownWithAStuckUpstreamEndsWhenTheGraceEnds(t *testing.T) {
	upstreamGone := make(chan struct{})
	stuck := newRawServer(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: first\n\n")
		_, _ = c.Read(make([]byte, 1)) // until keygate closes the connection
		close(upstreamGone)
	})
	r := start(t, "http://"+stuck, "{backend: memory}\nlast_used: {flush_interval: 1h}")
	tok, secret := r.token(t)
	req, _ := http.NewRequest("GET", "http://"+r.events+"/attendees", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, len("data: first\n\n"))); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		clientDone <- err
	}()
	const grace = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err = r.srv.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("shutdown with a stuck stream, grace %v: returned after %v: %v", grace, took.Round(time.Millisecond), err)
	if took > grace+2*time.Second {
		t.Errorf("shutdown took %v, want about the %v grace", took, grace)
	}
	select {
	case <-clientDone:
	case <-time.After(3 * time.Second):
		t.Error("the in-flight request's connection stayed open after shutdown")
	}
	select {
	case <-upstreamGone:
	case <-time.After(3 * time.Second):
		t.Error("the upstream connection stayed open after shutdown")
	}
	// The grace is spent, yet the pending last use is written.
	st, err := sqlite.Open(context.Background(), filepath.Join(r.dataDir, "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if stored, err := st.FindTokenByID(context.Background(), tok.ID); err != nil || stored.LastUsedAt == nil {
		t.Errorf("after a shutdown that spent its grace, the token's last use was not written (%v)", err)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "shutdown grace ended with requests in flight") || strings.Contains(logs, secret) {
		t.Errorf("want the grace's end logged, without the token:\n%s", logs)
	}
}

// newRawServer accepts connections and hands each, its request head
// read, to serve.
func newRawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	return tcptest.ServeAfterHead(t, serve)
}
