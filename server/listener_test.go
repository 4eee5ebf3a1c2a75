package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/server"
)

// openFiles counts this process's file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

// Clients that open connections and trickle a request body (with no
// token, or to a public route) hold at most listeners.max_connections of
// the API's listener and each for at most the body timeouts; meanwhile
// other clients of the API and /healthz on the admin listener keep
// answering, and keygate's file descriptors stay bounded by the limit.
func TestTricklingBodiesCannotExhaustConnections(t *testing.T) {
	const maxConns, tricklers = 64, 200
	admin, events := freeAddr(t), freeAddr(t)
	srv := newServer(t, parseConfig(t, fmt.Sprintf(`
data_dir: %s
admin: {listen: %s}
listeners: {max_connections: %d, body_idle_timeout: 300ms, body_timeout: 1s}
apis:
  - name: events
    preset: canskan
    listen: %s
    upstream: %s
    token_prefix: ev_
    rate_limits: {public: none, token: none}
    routes:
      - {methods: [GET, POST], path: '/p/{code}', access: public}
      - {methods: [POST], path: /attendees, access: token}
`, t.TempDir(), admin, maxConns, events, drainingUpstream(t))), server.Options{Logger: quietLogger()})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shutdownAt := time.Now()
		_ = srv.Shutdown(context.Background())
		t.Logf("shutdown took %v", time.Since(shutdownAt).Round(time.Millisecond))
	})
	before := openFiles(t)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var attackConns, held atomic.Int64
	var longestHold atomic.Int64
	for i := range tricklers {
		path := "/attendees" // no token: refused without reading the body
		if i%2 == 0 {
			path = "/p/abc" // public: the body is forwarded as it trickles
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				attackConns.Add(1)
				took := trickle(ctx, events, path, &held)
				longestHold.Store(max(longestHold.Load(), int64(took)))
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // every slot taken, tricklers queued

	var slowestClient, slowestHealth time.Duration
	peakFiles := 0
	for range 4 {
		took, err := timedGet("http://" + events + "/p/abc")
		if err != nil {
			t.Errorf("a client of the API during the attack: %v", err)
		}
		slowestClient = max(slowestClient, took)
		took, err = timedGet("http://" + admin + "/healthz")
		if err != nil {
			t.Errorf("/healthz during the attack: %v", err)
		}
		slowestHealth = max(slowestHealth, took)
		peakFiles = max(peakFiles, openFiles(t))
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	stopAt := time.Now()
	wg.Wait()
	t.Logf("tricklers stopped in %v", time.Since(stopAt).Round(time.Millisecond))
	// The test's own tricklers hold one descriptor each; what is left over
	// is keygate's side: accepted connections, at most the limit, and for
	// requests forwarded upstream two more each (keygate's connection to
	// the upstream and the upstream's, both in this process).
	keygateSide := peakFiles - before - tricklers
	t.Logf("%d tricklers (%d connections opened), max_connections %d: API client slowest %v, /healthz slowest %v, longest trickler hold %v, keygate-side descriptors at peak ≈ %d",
		tricklers, attackConns.Load(), maxConns, slowestClient.Round(time.Millisecond), slowestHealth.Round(time.Millisecond),
		time.Duration(longestHold.Load()).Round(time.Millisecond), keygateSide)
	if keygateSide > 3*maxConns+16 {
		t.Errorf("keygate held about %d descriptors for %d connections allowed: the connection limit does not hold", keygateSide, maxConns)
	}
	// Each trickler reconnects when keygate closes it: without body
	// timeouts none would ever be closed.
	if n := attackConns.Load(); n < 2*tricklers {
		t.Errorf("only %d connections for %d tricklers: keygate does not close trickling bodies", n, tricklers)
	}
	if hold := time.Duration(longestHold.Load()); hold > 5*time.Second {
		t.Errorf("a trickling connection was held %v; body timeouts are 300ms idle, 1s total", hold)
	}
}

// trickle sends a POST announcing a 64 KiB body and sends it a byte every
// 100ms until keygate closes the connection; it returns how long the
// connection was served.
func trickle(ctx context.Context, addr, path string, held *atomic.Int64) time.Duration {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return 0
	}
	defer c.Close()
	held.Add(1)
	defer held.Add(-1)
	start := time.Now()
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 65536\r\n\r\n", path); err != nil {
		return 0
	}
	// Notice when keygate closes the connection.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-closed:
			return time.Since(start)
		case <-tick.C:
			if _, err := c.Write([]byte("x")); err != nil {
				return time.Since(start)
			}
		}
	}
}

var attackClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func timedGet(url string) (time.Duration, error) {
	start := time.Now()
	resp, err := attackClient.Get(url)
	if err != nil {
		return time.Since(start), err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return time.Since(start), fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

// drainingUpstream reads whole request bodies, as a real upstream would.
func drainingUpstream(t *testing.T) string {
	u := echoUpstream(t)
	u.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	})
	return u.URL
}

// A keep-alive connection that waits past listeners.idle_timeout for its
// next request is closed by keygate, freeing its place under
// max_connections: on the admin listener and on an API's.
func TestIdleKeepAliveConnectionsAreClosedPastTheIdleTimeout(t *testing.T) {
	admin, events := startWithListeners(t, "{idle_timeout: 200ms}")
	for _, url := range []string{"http://" + admin + "/healthz", "http://" + events + "/nowhere"} {
		c, br := dialKeepAlive(t, url)
		askOnConnection(t, c, br, url)
		// Generous: the wait is for the close, not a measure of when it
		// comes (the default, 2m, would never come within it).
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: idle past idle_timeout 200ms, the connection read %d bytes, %v; want it closed (EOF)", url, n, err)
		}
	}
}

// A keep-alive connection idle for less than listeners.idle_timeout
// carries the client's next request.
func TestKeepAliveConnectionsIdleLessThanTheIdleTimeoutStayUsable(t *testing.T) {
	admin, events := startWithListeners(t, "{idle_timeout: 1m}")
	for _, url := range []string{"http://" + admin + "/healthz", "http://" + events + "/nowhere"} {
		c, br := dialKeepAlive(t, url)
		askOnConnection(t, c, br, url)
		time.Sleep(300 * time.Millisecond)
		askOnConnection(t, c, br, url)
	}
}

// startWithListeners runs keygate with the given listeners section and
// one API; it returns the admin and the API listener's addresses.
func startWithListeners(t *testing.T, listeners string) (admin, events string) {
	t.Helper()
	admin, events = freeAddr(t), freeAddr(t)
	runServer(t, fmt.Sprintf(`
data_dir: %s
admin: {listen: %s}
listeners: %s
`, t.TempDir(), admin, listeners)+eventsAPI(events), server.Options{Logger: quietLogger()})
	return admin, events
}

// dialKeepAlive opens a TCP connection to rawURL's host.
func dialKeepAlive(t *testing.T, rawURL string) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

// askOnConnection sends a GET for rawURL on c and reads the whole answer,
// which must leave the connection open for the next request.
func askOnConnection(t *testing.T, c net.Conn, br *bufio.Reader, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.Path, u.Host); err != nil {
		t.Fatalf("%s: %v", rawURL, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: %v", rawURL, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close || resp.StatusCode >= 500 {
		t.Fatalf("%s: %d, close %v, body error %v; want an answer on a connection kept open", rawURL, resp.StatusCode, resp.Close, err)
	}
}
