package gateway_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// keygate frames what it forwards itself, so the upstream sees one
// Content-Length, keygate's, never the client's copy beside it: Node's
// parser refuses a request with two (even equal), and servers that take
// the first or the last of two different spellings disagree.
func TestUpstreamSeesOneContentLength(t *testing.T) {
	heads := make(chan string, 8)
	upstream := serveRawConns(t, func(c net.Conn, br *bufio.Reader) {
		var head strings.Builder
		for {
			l, err := br.ReadString('\n')
			head.WriteString(l)
			if err != nil || l == "\r\n" {
				break
			}
		}
		heads <- head.String()
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	gw := eventsGateway(t, "http://"+upstream, keygate.Route{Methods: []string{"POST"}, Path: "/in", Access: keygate.AccessPublic})
	addr := newRawServer(t, gw)
	for _, lengths := range []string{
		"Content-Length: 5",
		"Content-Length: 5\r\nContent-Length: 5",
		"Content-Length: 05",
		"Content-Length: 5\r\nExpect: 100-continue",
	} {
		status, _ := rawExchange(t, addr, "POST /in HTTP/1.1\r\nHost: api.example\r\n"+lengths+"\r\nConnection: close\r\n\r\nhello")
		if !strings.HasSuffix(status, "200 OK") && !strings.HasSuffix(status, "100 Continue") {
			t.Errorf("%q: %s, want the upstream's 200", lengths, status)
			continue
		}
		select {
		case head := <-heads:
			if n := strings.Count(strings.ToLower(head), "\r\ncontent-length:"); n != 1 || !strings.Contains(head, "\r\nContent-Length: 5\r\n") {
				t.Errorf("%q: the upstream got %d Content-Length fields:\n%s", lengths, n, head)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%q: the upstream was not reached", lengths)
		}
	}
}
