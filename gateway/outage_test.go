package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/internal/tcptest"
)

// loggedProxy is proxyTo with the gateway's log lines and metrics kept.
func loggedProxy(t *testing.T, upstreamURL string) (proxied, *logtest.Buffer) {
	p, logs, _ := observedProxy(t, upstreamURL)
	return p, logs
}

func observedProxy(t *testing.T, upstreamURL string) (proxied, *logtest.Buffer, *prometheus.Registry) {
	t.Helper()
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	logs := &logtest.Buffer{}
	reg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{API: menusAPI(upstreamURL), Tokens: f.tokens, Metrics: metrics,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return proxied{url: srv.URL, secret: secret, gw: gw}, logs, reg
}

// scriptedUpstream accepts connections and hands each, its request head read,
// to serve.
func scriptedUpstream(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	return "http://" + tcptest.ServeAfterHead(t, serve)
}

// fetchCut asks p for /v2/products and reads the whole answer: status 0
// when the connection closed before the response head came. A body of
// known length is sent after the handler's buffer fills, so a short one
// cut off never reaches the client, which sees the connection close; a
// chunked one is sent as it comes and ends without its last chunk.
func fetchCut(t *testing.T, p proxied) (int, string, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(p.request(t, "GET", "/v2/products", nil))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// requestsCounted is the registry's keygate_requests_total, all outcomes.
func requestsCounted(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "keygate_requests_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// warnings returns the log lines at WARN or above.
func warnings(logs string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			out = append(out, line)
		}
	}
	return out
}

// An upstream that sends its response head and then stalls the body is
// cut off once it has been quiet for upstream_timeout: the client, which
// already has the status, gets a body that ends short (a connection
// closed before Content-Length, or a chunked body without its last
// chunk), never a hang, and keygate logs one line without the token.
func TestUpstreamThatStallsTheBodyIsCutOffAfterUpstreamTimeout(t *testing.T) {
	for _, framing := range []string{"Content-Length: 100\r\n\r\n{\"products\": [", "Transfer-Encoding: chunked\r\n\r\ne\r\n{\"products\": [\r\n"} {
		stalled := make(chan struct{})
		t.Cleanup(func() { close(stalled) })
		up := scriptedUpstream(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"+framing)
			<-stalled
		})
		p, logs := loggedProxy(t, up)
		gateway.SetUpstreamTimeouts(p.gw, 300*time.Millisecond, 300*time.Millisecond)
		start := time.Now()
		status, body, err := fetchCut(t, p)
		took := time.Since(start)
		t.Logf("%s: %d, body %q, error %v, after %v (upstream_timeout 300ms)", strings.SplitN(framing, ":", 2)[0], status, body, err, took.Round(time.Millisecond))
		if err == nil || (status != 0 && (status != 200 || body != `{"products": [`)) {
			t.Errorf("stalled body: %d %q %v, want a response that ends with an error", status, body, err)
		}
		if took > 3*time.Second {
			t.Errorf("body cut off after %v, want about the 300ms upstream timeout", took)
		}
		w := warnings(logs.String())
		if len(w) != 1 || !strings.Contains(w[0], "upstream stopped sending the response body in time") {
			t.Errorf("want one warning about the stalled body, got:\n%s", logs)
		}
		if strings.Contains(logs.String(), p.secret) {
			t.Error("the token appears in the log")
		}
	}
}

// Server-sent events are a stream: quiet longer than upstream_timeout
// between events is not a stall.
func TestEventStreamMayStayQuietLongerThanUpstreamTimeout(t *testing.T) {
	up := scriptedUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: first\n\n")
		time.Sleep(700 * time.Millisecond)
		io.WriteString(c, "data: second\n\n")
	})
	p, logs := loggedProxy(t, up)
	gateway.SetUpstreamTimeouts(p.gw, 200*time.Millisecond, 200*time.Millisecond)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(p.request(t, "GET", "/v2/products", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "data: first\n\ndata: second\n\n" {
		t.Errorf("event stream quiet for 700ms, upstream_timeout 200ms: %q %v, want both events", body, err)
	}
	if w := warnings(logs.String()); len(w) > 0 {
		t.Errorf("warnings for a quiet stream:\n%s", strings.Join(w, "\n"))
	}
}

// An upstream that resets the connection in the middle of a body: the
// client's response ends short (not taken for a whole one), the request
// is counted, and keygate logs one line without the token.
func TestUpstreamResetMidBodyCutsTheResponseShort(t *testing.T) {
	up := scriptedUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\ne\r\n{\"products\": [\r\n")
		time.Sleep(50 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0) // close sends RST
	})
	p, logs, reg := observedProxy(t, up)
	status, body, err := fetchCut(t, p)
	t.Logf("reset mid-body: %d, body %q, error %v", status, body, err)
	if n := requestsCounted(t, reg); n != 1 {
		t.Errorf("keygate_requests_total %v after one request cut short, want 1", n)
	}
	if err == nil || (status != 0 && (status != 200 || body != `{"products": [`)) {
		t.Errorf("reset mid-body: %d %q %v, want a response that ends with an error", status, body, err)
	}
	w := warnings(logs.String())
	if len(w) != 1 || !strings.Contains(w[0], "upstream response body broke off") {
		t.Errorf("want one warning about the broken body, got:\n%s", logs)
	}
	if strings.Contains(logs.String(), p.secret) {
		t.Error("the token appears in the log")
	}
}

// A client that leaves while the upstream stalls a body frees the
// handler and the upstream connection at once: nothing waits on a body
// nobody will read.
func TestClientLeavingAStalledBodyClosesTheUpstreamConnection(t *testing.T) {
	closed := make(chan time.Time, 1)
	up := scriptedUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
		c.Read(make([]byte, 1)) // returns when keygate closes the connection
		closed <- time.Now()
	})
	p, logs := loggedProxy(t, up)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := http.DefaultClient.Do(p.request(t, "GET", "/v2/products", nil).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 1))
	left := time.Now()
	cancel()
	resp.Body.Close()
	select {
	case at := <-closed:
		t.Logf("upstream connection closed %v after the client left", at.Sub(left).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream connection stayed open after the client left (upstream_timeout is 60s)")
	}
	if w := warnings(logs.String()); len(w) > 0 {
		t.Errorf("a client leaving is no upstream failure:\n%s", strings.Join(w, "\n"))
	}
}

// An upstream host name whose resolver never answers is bounded by the
// dial timeout, which covers name resolution: the preset's 504.
func TestUpstreamNameThatNeverResolvesIsAGatewayTimeout(t *testing.T) {
	dns, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns.LocalAddr().String())
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
	p, logs := loggedProxy(t, "http://api.upstream.example:8080")
	gateway.SetUpstreamDialTimeout(p.gw, 300*time.Millisecond)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(p.request(t, "GET", "/v2/products", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	t.Logf("resolver blackholed: %d %s after %v (dial timeout 300ms)", resp.StatusCode, body, took.Round(time.Millisecond))
	if resp.StatusCode != 504 || string(body) != `{"detail": "Gateway Timeout"}` {
		t.Errorf("got %d %s, want the preset's 504", resp.StatusCode, body)
	}
	if took > 3*time.Second {
		t.Errorf("answered after %v, want about the 300ms dial timeout", took)
	}
	w := warnings(logs.String())
	if len(w) != 1 || !strings.Contains(w[0], "upstream did not answer in time") || strings.Contains(logs.String(), p.secret) {
		t.Errorf("want one warning without the token, got:\n%s", logs)
	}
}
