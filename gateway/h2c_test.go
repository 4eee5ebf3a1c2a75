package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/tcptest"
)

// An HTTP/2 cleartext upgrade would turn the client's connection into an
// HTTP/2 one to the upstream after the first request: every later stream
// on it would reach the upstream unchecked, with whatever X-Keygate-*
// headers the client wrote. keygate forwards a request asking for h2c as
// an ordinary one, without its Upgrade, even to an upstream that would
// switch; WebSocket upgrades are untouched.
func TestH2CUpgradeIsNotPassedOn(t *testing.T) {
	// An upstream that switches to whatever protocol it is asked for, and
	// then reports the first bytes the tunnel brings.
	upgrades := make(chan string, 4)
	upstream := serveRawConns(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if up := req.Header.Get("Upgrade"); up != "" {
			upgrades <- up
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+up+"\r\n\r\n")
			line, _ := br.ReadString('\n')
			upgrades <- "tunnel: " + line
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
	})
	srv := newRawServer(t, eventsGateway(t, "http://"+upstream))

	for _, upgrade := range []string{"h2c", "H2C", "websocket, h2c"} {
		c, err := net.Dial("tcp", srv)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /p/abc HTTP/1.1\r\nHost: api.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "+upgrade+"\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("Upgrade: %s: %v", upgrade, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		if resp.StatusCode != http.StatusOK || string(body) != "plain" {
			// Past a 101 the client would speak to the upstream directly.
			_, _ = io.WriteString(c, "GET /api/v1/webhooks HTTP/1.1\r\nX-Keygate-Org: org_forged\r\n\r\n")
			t.Errorf("Upgrade: %s: %d %q, want the upstream's plain 200", upgrade, resp.StatusCode, body)
		}
		c.Close()
	}
	select {
	case up := <-upgrades:
		t.Errorf("the upstream was asked to switch: %q", up)
		if tunnel := <-upgrades; strings.HasPrefix(tunnel, "tunnel: GET") {
			t.Errorf("and read the client's next request unchecked: %q", tunnel)
		}
	default:
	}
}

// newRawServer serves h on a loopback listener closed with the test and
// returns its address.
func newRawServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// serveRawConns answers each connection to a loopback listener, closed
// with the test, with handle, and returns the listener's address: an
// upstream that writes exactly the bytes a test needs. A connection is
// closed when handle returns, or after five seconds.
func serveRawConns(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	return tcptest.Serve(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		handle(c, bufio.NewReader(c))
	})
}
