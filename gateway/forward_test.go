package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/ratelimit"
)

// proxied is keygate's cannmenus gateway in front of upstream, served by a
// real net/http server, and a token it accepts.
type proxied struct {
	url    string
	secret string
	gw     *gateway.Gateway
}

func proxyTo(t *testing.T, upstreamURL string) proxied {
	t.Helper()
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	gw, err := gateway.New(gateway.Config{API: menusAPI(upstreamURL), Tokens: f.tokens, MaxBodyBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return proxied{url: srv.URL, secret: secret, gw: gw}
}

func (p proxied) request(t *testing.T, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Token", p.secret)
	return req
}

func TestForwardStreamsServerSentEvents(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: message\ndata: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			io.WriteString(w, "data: second\n\n")
		case <-r.Context().Done():
		}
	}))
	p := proxyTo(t, upstream.URL)
	// Cleanups run last first: the stream ends before either server closes.
	t.Cleanup(upstream.Close)
	t.Cleanup(func() { close(release) })

	// The response head and the first event must come while the upstream
	// still holds the stream open.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(p.request(t, "GET", "/v2/products", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event arrives while the upstream still holds the stream.
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "event: message\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not reach the client before the stream ended")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestForwardChunkedRequestBodyAndItsLimit(t *testing.T) {
	var seen atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(strings.Join(r.TransferEncoding, ",") + " " + string(b))
	}))
	defer upstream.Close()
	p := proxyTo(t, upstream.URL)

	// io.MultiReader hides the length: the client sends it chunked.
	resp, err := http.DefaultClient.Do(p.request(t, "POST", "/v2/upload", io.MultiReader(strings.NewReader("hello "), strings.NewReader("world"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || seen.Load() != "chunked hello world" {
		t.Fatalf("status %d, upstream saw %q; want 200 and the chunked body", resp.StatusCode, seen.Load())
	}

	// Over the 1024-byte limit without a Content-Length to refuse early.
	resp, err = http.DefaultClient.Do(p.request(t, "POST", "/v2/upload", io.MultiReader(strings.NewReader(strings.Repeat("x", 4096)))))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || string(b) != `{"detail": "Request Entity Too Large"}` {
		t.Fatalf("chunked body over the limit: %d %s", resp.StatusCode, b)
	}
}

func TestForwardKeepsUpstreamConnectionsAlive(t *testing.T) {
	var dialled atomic.Int32
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok": true}`)
	}))
	upstream.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	upstream.Start()
	defer upstream.Close()
	p := proxyTo(t, upstream.URL)
	for i := range 20 {
		resp, err := http.DefaultClient.Do(p.request(t, "GET", "/v2/products", nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != `{"ok": true}` {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if n := dialled.Load(); n != 1 {
		t.Fatalf("20 requests in a row opened %d upstream connections, want 1", n)
	}
}

// TestForwardRetriesAConnectionTheUpstreamClosed: an upstream that drops
// idle connections sooner than keygate does must not cost a request.
func TestForwardRetriesAConnectionTheUpstreamClosed(t *testing.T) {
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	upstream.Config.IdleTimeout = 20 * time.Millisecond
	upstream.Start()
	defer upstream.Close()
	p := proxyTo(t, upstream.URL)
	for i := range 3 {
		resp, err := http.DefaultClient.Do(p.request(t, "GET", "/v2/products", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d after the upstream closed the idle connection: %d", i, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestForwardDropsHopByHopHeaders(t *testing.T) {
	var seen http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Connection", "X-Upstream-Hop")
		w.Header().Set("X-Upstream-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End-To-End", "kept")
	}))
	defer upstream.Close()
	p := proxyTo(t, upstream.URL)
	req := p.request(t, "GET", "/v2/products", nil)
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "1")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	req.Header.Set("X-Other", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, name := range []string{"X-Client-Hop", "Proxy-Connection", "Connection"} {
		if v, ok := seen[name]; ok {
			t.Errorf("upstream got hop-by-hop %s: %q", name, v)
		}
	}
	if seen.Get("Te") != "trailers" || seen.Get("X-Other") != "kept" {
		t.Errorf("upstream got Te %q, X-Other %q; want trailers and kept", seen.Get("Te"), seen.Get("X-Other"))
	}
	if xff := seen.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want only the peer keygate saw", xff)
	}
	if resp.Header.Get("X-Upstream-Hop") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-End-To-End") != "kept" {
		t.Errorf("client got %v", resp.Header)
	}
}

func TestForwardUpstreamTimeouts(t *testing.T) {
	// An upstream that accepts and never answers: neither the response
	// head nor a TLS handshake comes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, scheme := range []string{"http", "https"} {
		p := proxyTo(t, scheme+"://"+ln.Addr().String())
		gateway.SetUpstreamTimeouts(p.gw, 200*time.Millisecond, 200*time.Millisecond)
		start := time.Now()
		resp, err := http.DefaultClient.Do(p.request(t, "GET", "/v2/products", nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 504 || string(b) != `{"detail": "Gateway Timeout"}` {
			t.Errorf("%s upstream that never answers: %d %s", scheme, resp.StatusCode, b)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("%s: answered after %s, want the 200ms timeout", scheme, waited)
		}
	}
}

func TestForwardToTLSUpstream(t *testing.T) {
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.RequestURI())
	}))
	defer upstream.Close()
	p := proxyTo(t, upstream.URL+"/base")
	// The test server's certificate is its own; trust it for this client.
	gateway.TrustUpstreamCertificates(p.gw, upstream.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)
	resp, err := http.DefaultClient.Do(p.request(t, "GET", "/v2/products?states=California", nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "/base/v2/products?states=California" {
		t.Fatalf("TLS upstream: %d %s", resp.StatusCode, b)
	}
}

// apis[].upstream_timeout bounds the wait for a slow upstream's answer:
// past it the client gets the preset's 504, while an upstream that refuses
// the connection is a 502.
func TestForwardUpstreamTimeoutIsConfiguredPerAPI(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Slow") != "" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	defer close(release) // before Close, which waits for the held handler
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	api := menusAPI(upstream.URL)
	api.UpstreamTimeout = 300 * time.Millisecond
	gw, err := gateway.New(gateway.Config{API: api, Tokens: f.tokens})
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string][]string{"X-Token": {secret}}
	expect(t, "fast upstream", serve(gw, "GET", "/v2/products?states=California", headers), 200, "ok")
	start := time.Now()
	expect(t, "slow upstream", serve(gw, "GET", "/v2/products?states=California", map[string][]string{"X-Token": {secret}, "X-Slow": {"1"}}), 504, `{"detail": "Gateway Timeout"}`)
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("answered after %s, want the 300ms upstream_timeout", waited)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	gw, err = gateway.New(gateway.Config{API: menusAPI(closedURL), Tokens: f.tokens})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "refused connection", serve(gw, "GET", "/v2/products?states=California", headers), 502, `{"detail": "Bad Gateway"}`)
}

// An upstream that writes after its response ended (a bug, or a
// compromised upstream) does not get those bytes taken for the answer to
// the next request, which may be another client's: a connection on which
// anything arrived while idle is closed, and the request goes out on a
// fresh one. Each connection here answers its first request and then,
// while idle, sends a whole forged response.
func TestForwardNeverReusesAConnectionThatSpokeWhileIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				body := fmt.Sprintf("answer from connection %d", n)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				time.Sleep(50 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
				// Keep the connection open: only its bytes give it away.
				http.ReadRequest(br)
			}()
		}
	}()
	p := proxyTo(t, "http://"+ln.Addr().String())
	for i := 1; i <= 3; i++ {
		resp, err := http.DefaultClient.Do(p.request(t, "GET", "/v2/products", nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("answer from connection %d", i); resp.StatusCode != 200 || string(b) != want {
			t.Errorf("request %d: %d %q, want 200 %q", i, resp.StatusCode, b, want)
		}
		time.Sleep(150 * time.Millisecond) // the forged response arrives while idle
	}
}

// The header maps of requests on their way upstream are reused: nothing
// one request sent may reach the upstream with the next.
func TestForwardedHeadersDoNotCarryOverBetweenRequests(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	for i := range 20 {
		h := map[string][]string{"X-Token": {secret}}
		if i%2 == 0 {
			h["X-Only-Even"] = []string{"even", "twice"}
			h["Accept-Language"] = []string{"de"}
		}
		got := serve(f.menusGW, "GET", "/v2/products", h)
		var seen upstreamSeen
		if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
			t.Fatalf("request %d: %d %s", i, got.status, got.body)
		}
		want := 0
		if i%2 == 0 {
			want = 2
		}
		if n := len(seen.Header.Values("X-Only-Even")); n != want || (want == 0) != (seen.Header.Get("Accept-Language") == "") {
			t.Errorf("request %d: upstream saw %v", i, seen.Header)
		}
	}
}

// keygate's rate limit headers are the client's only ones: an upstream's
// fields of the same names, in any spelling, are not passed beside them,
// on the proxy's own path or an upgrade's.
func TestKeygatesRateLimitHeadersReplaceTheUpstreams(t *testing.T) {
	upstreamLimits := func(h http.Header) {
		h["X-RateLimit-Limit"] = []string{"5000"}
		h["X-Ratelimit-Remaining"] = []string{"4999", "4998"}
		h["x-ratelimit-reset"] = []string{"1"}
		h["Vary"] = []string{"Accept-Encoding"}
		h["X-Upstream"] = []string{"kept"}
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			upstreamLimits(w.Header())
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		h := http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
		upstreamLimits(h)
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		h.Write(brw)
		brw.WriteString("\r\n")
		brw.Flush()
	}))
	defer upstream.Close()
	gw := publicGatewayTo(t, upstream.URL)

	for i, upgrade := range []bool{false, true} {
		resp := getPublic(t, gw, upgrade)
		resp.Body.Close()
		checkKeygatesLimits(t, resp, i, upgrade)
		for name, v := range map[string]string{"Vary": "Accept-Encoding", "X-Upstream": "kept"} {
			if got := resp.Header[name]; len(got) != 1 || got[0] != v {
				t.Errorf("upgrade %v: %s %q, want only %q", upgrade, name, got, v)
			}
		}
	}
}

// publicGatewayTo serves the canskan API in front of upstream, its public
// routes limited per client address; it returns the gateway's URL.
func publicGatewayTo(t *testing.T, upstream string) string {
	t.Helper()
	limiter := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { limiter.Close() })
	f := newFixture(t)
	gw, err := gateway.New(gateway.Config{API: eventsAPI(upstream), Tokens: f.tokens, Limiter: limiter, MaxBodyBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv.URL
}

// getPublic asks gw for a public route, as a WebSocket upgrade when
// upgrade is set (httputil.ReverseProxy's path).
func getPublic(t *testing.T, gw string, upgrade bool) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", gw+"/p/abc123def456", nil)
	if upgrade {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// checkKeygatesLimits checks that the header of the response to a
// client's nth request (from 0) holds keygate's X-RateLimit-* fields, once
// each: the public limit of 10 a minute.
func checkKeygatesLimits(t *testing.T, resp *http.Response, n int, upgrade bool) {
	t.Helper()
	for name, v := range map[string]string{"X-Ratelimit-Limit": "10", "X-Ratelimit-Remaining": strconv.Itoa(9 - n)} {
		if got := resp.Header[name]; len(got) != 1 || got[0] != v {
			t.Errorf("upgrade %v: %s %q, want only %q", upgrade, name, got, v)
		}
	}
	if got := resp.Header["X-Ratelimit-Reset"]; len(got) != 1 || got[0] == "1" {
		t.Errorf("upgrade %v: X-RateLimit-Reset %q, want only keygate's", upgrade, got)
	}
}

// An upstream cannot slip its own X-RateLimit-* in as trailers, which a
// client may merge into the header: trailers of the names keygate set on
// the response are dropped, announced in Trailer or not, in any spelling,
// on the proxy's own path and on ReverseProxy's (an upgrade request the
// upstream answers without upgrading). So are those RFC 9110 section
// 6.5.1 keeps out of trailers (framing, routing, connection management,
// authentication, request modifiers, response controls, content format),
// and those the response's Connection field lists, which are hop-by-hop
// for this response (RFC 9110 section 7.6.1), announced or not.
// Other trailers pass.
func TestUpstreamTrailersCannotSpeakForKeygate(t *testing.T) {
	// Written as bytes: net/http's server would not announce some of
	// these names itself.
	const answer = "HTTP/1.1 200 OK\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"Connection: X-Secret-Hop\r\nConnection: keep-alive, x-unannounced-hop\r\n" +
		"Trailer: x-ratelimit-remaining, X-Checksum, content-type, Content-Encoding, Cache-Control\r\n" +
		"Trailer: Authorization, WWW-Authenticate, Upgrade, Keep-Alive, if-match, Host, x-secret-hop\r\n" +
		"\r\n" +
		"4\r\nbody\r\n0\r\n" +
		"X-Ratelimit-Remaining: 4999\r\nX-Checksum: c0ffee\r\n" +
		"x-ratelimit-limit: 5000\r\nX-RATELIMIT-RESET: 1\r\nX-Late: late\r\n" +
		"Content-Type: text/html\r\nContent-Encoding: gzip\r\nCache-Control: public, max-age=86400\r\n" +
		"Authorization: Bearer kg_x\r\nWWW-Authenticate: Basic\r\nUpgrade: h2c\r\nKeep-Alive: timeout=5\r\n" +
		"If-Match: *\r\nHost: elsewhere.example\r\n" +
		"Content-Length: 99\r\nTransfer-Encoding: gzip\r\nTrailer: X-Late\r\nConnection: close\r\n" +
		"Content-Range: bytes 0-3/4\r\nProxy-Authenticate: Basic\r\nTE: trailers\r\nRange: bytes=0-\r\n" +
		"X-Secret-Hop: s3cret\r\nX-Unannounced-Hop: hop\r\n" +
		"\r\n"
	upstream := scriptedUpstream(t, func(c net.Conn) {
		io.WriteString(c, answer)
	})
	gw := publicGatewayTo(t, upstream)

	for i, upgrade := range []bool{false, true} {
		resp := getPublic(t, gw, upgrade)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != "body" {
			t.Fatalf("upgrade %v: %d %q %v", upgrade, resp.StatusCode, body, err)
		}
		checkKeygatesLimits(t, resp, i, upgrade)
		wantTrailer := http.Header{"X-Checksum": {"c0ffee"}, "X-Late": {"late"}}
		if len(resp.Trailer) != len(wantTrailer) {
			t.Errorf("upgrade %v: trailers %q, want %q", upgrade, resp.Trailer, wantTrailer)
		}
		for name, v := range wantTrailer {
			if got := resp.Trailer[name]; len(got) != 1 || got[0] != v[0] {
				t.Errorf("upgrade %v: trailer %s %q, want %q (all: %q)", upgrade, name, got, v, resp.Trailer)
			}
		}
	}
}
