package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/gateway"
	"golang.org/x/net/http/httpguts"
)

// A hostile or broken upstream: FuzzUpstreamResponse has a raw TCP
// upstream answer the first request of each input with arbitrary bytes,
// and every later request with a fixed "ok". keygate's HTTP/1.1 client
// reads the answer with its own reader, which FuzzUpstreamResponseHead
// holds to net/http's (never more lenient, sometimes stricter), and
// handles the rest itself: interim responses, hop-by-hop headers,
// streaming, trailers, pooling.

// rawUpstream answers the first request it reads after arm with the
// armed bytes, then closes that connection; later requests get okAnswer,
// which closes its connection too, so every input's request goes out on
// a new connection (an idle one that fails before an answer is tried
// again, as it should be, and would hide what the input did).
type rawUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	armed []byte
}

const okAnswer = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

func newRawUpstream(tb testing.TB) *rawUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return u
}

func (u *rawUpstream) arm(b []byte) {
	u.mu.Lock()
	u.armed = b
	u.mu.Unlock()
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	io.Copy(io.Discard, req.Body)
	u.mu.Lock()
	answer := u.armed
	u.armed = nil
	u.mu.Unlock()
	if answer == nil {
		answer = []byte(okAnswer)
	}
	c.Write(answer)
}

// expectedAnswer is what the upstream's bytes say, read as keygate's
// client reads them: interim responses skipped. ok is false when they are
// no response at all; bodyOK is false when the body breaks off.
func expectedAnswer(raw []byte) (resp *http.Response, body []byte, ok, bodyOK bool) {
	req, _ := http.NewRequest(http.MethodGet, "http://upstream/", nil)
	br := bufio.NewReader(bytes.NewReader(raw))
	resp, err := http.ReadResponse(br, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		return nil, nil, false, false
	}
	body, err = io.ReadAll(resp.Body)
	return resp, body, true, err == nil
}

// serverSetHeaders are the headers net/http's server writes itself, so
// the client may see them whatever the upstream said.
var serverSetHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Content-Type": true, "Date": true,
	"Transfer-Encoding": true, "Trailer": true,
}

// hopByHopFields are the hop-by-hop names (RFC 9110 section 7.6.1), as
// http.Header spells them; none may reach the client as a trailer.
var hopByHopFields = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// keygateLimitHeader is a header keygate sets on a forwarded response,
// as http.Header spells it.
const keygateLimitHeader = "X-Ratelimit-Limit"

func FuzzUpstreamResponse(f *testing.F) {
	for _, s := range []string{
		okAnswer,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstolen",
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra",
		"HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTe: trailers\r\nProxy-Connection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-ratelimit-limit, X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-RateLimit-Limit: 5000\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-ratelimit-LIMIT: 5000\r\nX-Late: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: content-type, X-Sum, Authorization, upgrade, If-None-Match\r\n\r\n2\r\nok\r\n0\r\nContent-Type: text/html\r\nX-Sum: 1\r\nAuthorization: Basic eDp5\r\nUpgrade: h2c\r\nIf-None-Match: *\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\ncontent-length: 99\r\nTransfer-Encoding: gzip\r\nTrailer: X-Sum\r\nHost: h\r\nConnection: close\r\nWWW-Authenticate: Basic\r\nCache-Control: public\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\n\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	up := newRawUpstream(f)
	target, _ := url.Parse("http://" + up.ln.Addr().String())
	api := menusAPI(target.String())
	var fw *gateway.Forwarder
	fw = gateway.NewForwarder(api, target, nil, func(w http.ResponseWriter, _ *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "refused")
	}, slog.New(slog.DiscardHandler))
	client := netip.MustParseAddr("203.0.113.7")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// keygate's word on the limit, as the gateway sets it before
		// forwarding: no header or trailer of the upstream's may add
		// to it.
		w.Header().Set(keygateLimitHeader, "10")
		fw.Forward(w, r, nil, client)
	}))
	f.Cleanup(srv.Close)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	f.Fuzz(func(t *testing.T, raw []byte) {
		want, wantBody, parsed, bodyOK := expectedAnswer(raw)
		// What keygate's own reader refuses beyond net/http.
		headErr, bodyErr := gateway.ReadUpstreamResponse(raw)
		up.arm(raw)
		resp, err := hc.Get(srv.URL + "/v2/products")
		var got []byte
		var readErr error
		if err == nil {
			got, readErr = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		up.arm(nil)

		switch {
		case err != nil:
			// keygate breaks the connection off only when the upstream
			// broke off its body, or sent one keygate refuses to read.
			if (!parsed || bodyOK) && (headErr != nil || bodyErr == nil) {
				t.Fatalf("GET: %v", err)
			}
		case !parsed:
			if resp.StatusCode != http.StatusBadGateway || string(got) != "refused" {
				t.Fatalf("no response from the upstream, but the client got %d %q", resp.StatusCode, got)
			}
		case resp.StatusCode == http.StatusBadGateway && string(got) == "refused" && want.StatusCode != http.StatusBadGateway:
			// keygate refused what net/http read as a response; allowed
			// only for answers a proxy cannot pass on: a 101 nobody
			// asked for, a code HTTP does not have, or a head keygate's
			// reader refuses (upstream_head.go says which).
			if headErr == nil && want.StatusCode != http.StatusSwitchingProtocols && want.StatusCode >= 200 && want.StatusCode <= 599 {
				t.Fatalf("upstream answered %d, client got keygate's 502", want.StatusCode)
			}
		default:
			if resp.StatusCode < 200 || resp.StatusCode > 599 {
				t.Fatalf("client got status %d", resp.StatusCode)
			}
			if want.StatusCode >= 200 && resp.StatusCode != want.StatusCode {
				t.Fatalf("upstream answered %d, client got %d", want.StatusCode, resp.StatusCode)
			}
			if readErr == nil && bodyOK && !noBodyAllowed(want.StatusCode) && !bytes.Equal(got, wantBody) {
				t.Fatalf("upstream's body %q reached the client as %q", wantBody, got)
			}
			if readErr == nil && !bodyOK && len(wantBody) > 0 && !noBodyAllowed(want.StatusCode) {
				t.Fatalf("a body the upstream broke off (%q) reached the client as a whole one (%q)", wantBody, got)
			}
			if got := resp.Header[keygateLimitHeader]; len(got) != 1 || got[0] != "10" {
				t.Fatalf("%s reached the client as %q, want only keygate's", keygateLimitHeader, got)
			}
			if v, ok := resp.Trailer[keygateLimitHeader]; ok && readErr == nil {
				t.Fatalf("the upstream's trailer %s: %q reached the client", keygateLimitHeader, v)
			}
			for name, v := range resp.Trailer {
				if !httpguts.ValidTrailerHeader(name) || slices.Contains(hopByHopFields, name) {
					t.Fatalf("trailer %s: %q, a name RFC 9110 keeps out of trailers, reached the client", name, v)
				}
			}
			for _, name := range []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Upgrade"} {
				if v, ok := resp.Header[name]; ok {
					t.Fatalf("hop-by-hop header %s: %q reached the client", name, v)
				}
			}
			for _, v := range want.Header["Connection"] {
				for name := range strings.SplitSeq(v, ",") {
					name = http.CanonicalHeaderKey(strings.TrimSpace(name))
					if name == "" || serverSetHeaders[name] || name == keygateLimitHeader {
						continue
					}
					if v, ok := resp.Header[name]; ok {
						t.Fatalf("header %s named in Connection reached the client: %q", name, v)
					}
				}
			}
		}

		// The next request gets the next answer: nothing the upstream
		// sent for this one is taken for another's.
		resp, err = hc.Get(srv.URL + "/v2/products")
		if err != nil {
			t.Fatalf("next GET: %v", err)
		}
		got, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "ok" {
			t.Fatalf("after %q, the next request got %d %q instead of the upstream's answer to it", raw, resp.StatusCode, got)
		}
	})
}

func noBodyAllowed(status int) bool {
	return status >= 100 && status < 200 || status == http.StatusNoContent || status == http.StatusNotModified
}
