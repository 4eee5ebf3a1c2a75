package server_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentRedis listens where keygate is told Redis is and accepts
// connections, reads what is sent and never answers: every Redis call
// lasts until its timeout. It returns the address.
func silentRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = c.Read(make([]byte, 1<<16)) }()
		}
	}()
	return ln.Addr().String()
}

// A client that leaves while its OAuth request's rate limit is being
// checked (Redis has not answered yet when the request's context ends) is
// no failure of the limiter: keygate logs it at debug only. The request is
// sent over raw TCP and the connection closed at once; Redis never
// answers, so the client is gone well before the Redis call times out.
func TestOAuthClientGoneDuringTheRateLimitLogsNothingAboveDebug(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: redis, redis_url: 'redis://"+silentRedis(t)+"/0', redis_timeout: 1s, on_redis_failure: closed}")
	seen := len(r.logs.String())
	conn, err := net.Dial("tcp", r.admin)
	if err != nil {
		t.Fatal(err)
	}
	// A request without a body: the server watches its connection, and
	// ends the request's context when the client closes it, from the
	// start.
	if _, err := conn.Write([]byte("GET /oauth/authorize?response_type=code&client_id=probe HTTP/1.1\r\nHost: " + r.admin + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	const gone, failed = "client went away while an OAuth endpoint's rate limit was checked", "rate limiter failed for an OAuth endpoint"
	var logged string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if logged = r.logs.String()[seen:]; strings.Contains(logged, gone) || strings.Contains(logged, failed) {
			break
		}
	}
	if !strings.Contains(logged, "level=DEBUG msg=\""+gone+"\"") {
		t.Errorf("no debug line for the client gone:\n%s", logged)
	}
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "OAuth") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("a client gone during an OAuth endpoint's rate limit logged above debug: %s", line)
		}
	}
}
