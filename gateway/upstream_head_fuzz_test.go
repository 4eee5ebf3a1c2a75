package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Smuggling and framing classics: each one a response head (and body)
// that two HTTP parsers might read differently.
var responseHeadSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstolen",
	// Content-Length and Transfer-Encoding together: chunked wins, the
	// length is dropped.
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n0\r\n\r\n",
	// Duplicate lengths, equal and differing.
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab",
	// Transfer codings other than a lone chunked.
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding:\tchunked \r\n\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok",
	// obs-fold, whitespace before the colon, bare LF and bare CR.
	"HTTP/1.1 200 OK\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: 1\r\n\tmore\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\rX-B: 1\r\n\r\nok",
	"HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A\x7f: 1\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n: empty\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent_Length: 2\r\ncontent-length: 2\r\n\r\nok",
	// Lengths: negative, signed, hex, overflowing, empty.
	"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	// Chunk sizes: overflowing, signed, with extensions, bare LF.
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstolen",
	// Trailers.
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, x-sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\nX-Late: 2\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Sum: 1\n\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Sum: 1\r\n folded\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTrailer: X-Sum\r\n\r\n",
	// Bodies none may have, and bodies until the connection closes.
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\nuntil close",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTe: trailers\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	// Interim responses, and status lines.
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
	"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 +20 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
	"HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\nContent-Length: 0\r\n\r\n",
	"",
}

// FuzzUpstreamResponseHead holds keygate's response-head reader to
// net/http's: whatever keygate accepts, http.ReadResponse (with the body
// read as net/http reads it) accepts as the same status, the same
// framing (Content-Length, body bytes, trailers, where the next response
// starts, whether the connection may be reused) and the same header,
// except the fields keygate drops on purpose. keygate may refuse more
// (upstream_head.go says what).
func FuzzUpstreamResponseHead(f *testing.F) {
	for _, s := range responseHeadSeeds {
		f.Add([]byte(s), false, uint8(0))
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), true, uint8(1))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), true, uint8(2))
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-Long: "+strings.Repeat("b", 100)+"\r\nTransfer-Encoding: chunked\r\n\r\n3;"+strings.Repeat("e", 40)+"\r\nabc\r\n0\r\n\r\n"), false, uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, head bool, size uint8) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		// Small read buffers split lines across reads; keygate's own is
		// 16 KB, as is net/http's here.
		bufSize := []int{16 << 10, 16, 61}[int(size)%3]
		src := bytes.NewReader(raw)
		br := bufio.NewReaderSize(src, bufSize)
		var r upstreamResponse
		if err := r.read(br, method); err != nil {
			return
		}

		nsrc := bytes.NewReader(raw)
		nbr := bufio.NewReaderSize(nsrc, 16<<10)
		resp, err := http.ReadResponse(nbr, &http.Request{Method: method})
		for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			resp, err = http.ReadResponse(nbr, &http.Request{Method: method})
		}
		if err != nil {
			t.Fatalf("keygate read %q; net/http refused it: %v", raw, err)
		}
		if r.status != resp.StatusCode || r.contentLength != resp.ContentLength || r.close != resp.Close {
			t.Fatalf("%q: keygate read status %d, length %d, close %v; net/http %d, %d, %v",
				raw, r.status, r.contentLength, r.close, resp.StatusCode, resp.ContentLength, resp.Close)
		}
		announced := make([]string, 0, len(resp.Trailer))
		for name := range resp.Trailer {
			announced = append(announced, name)
		}
		slices.Sort(announced)
		if got := slices.Sorted(slices.Values(r.trailer)); !slices.Equal(got, announced) {
			t.Fatalf("%q: keygate announces trailers %q, net/http %q", raw, got, announced)
		}

		got := http.Header{}
		r.passHeader(got, nil)
		want := resp.Header.Clone()
		removeHopByHopHeaders(want)
		delete(want, "Te")
		for name, values := range got {
			if !slices.Equal(values, want[name]) {
				t.Fatalf("%q: keygate passes %s: %q, net/http's header holds %q", raw, name, values, want[name])
			}
		}
		for name, values := range want {
			// net/http deletes "Connection: close" before keygate could
			// read the other fields it names; keygate drops those too.
			if _, ok := got[name]; !ok && !(len(r.connection) > 0 && resp.Header["Connection"] == nil && isHopByHopFor(r.connection, name)) {
				t.Fatalf("%q: keygate drops %s: %q, which net/http's header holds", raw, name, values)
			}
		}

		body, err := io.ReadAll(&r.body)
		wantBody, wantErr := io.ReadAll(resp.Body)
		if err != nil {
			// keygate's chunk lines must fit its read buffer; it refuses
			// more than net/http only that way and in trailers.
			return
		}
		if wantErr != nil {
			t.Fatalf("%q: keygate read the body %q whole; net/http refused it: %v", raw, body, wantErr)
		}
		if !bytes.Equal(body, wantBody) {
			t.Fatalf("%q: keygate read the body %q, net/http %q", raw, body, wantBody)
		}
		if rest, wantRest := br.Buffered()+src.Len(), nbr.Buffered()+nsrc.Len(); rest != wantRest {
			t.Fatalf("%q: keygate leaves %d bytes after the response, net/http %d", raw, rest, wantRest)
		}
		trailers := http.Header{}
		for _, f := range r.trailers {
			trailers[f.name] = append(trailers[f.name], f.value)
		}
		wantTrailers := http.Header{}
		for name, values := range resp.Trailer {
			if values != nil {
				wantTrailers[name] = values
			}
		}
		if !equalHeaders(trailers, wantTrailers) {
			t.Fatalf("%q: keygate read trailers %q, net/http %q", raw, trailers, wantTrailers)
		}
	})
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for name, values := range a {
		if !slices.Equal(values, b[name]) {
			return false
		}
	}
	return true
}

// What keygate refuses that net/http reads, each for a reason
// upstream_head.go gives, and what it reads as net/http does.
func TestUpstreamResponseHeadFraming(t *testing.T) {
	refused := map[string]error{
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n\tmore\r\nContent-Length: 2\r\n\r\nok":                      errObsFold,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok":           errFieldLine,
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok":            errTransferEncoding,
		"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n":                                           errStatusLine,
		"HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n":                                          errStatusLine,
		"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n":                                            errStatusLine,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X Sum\r\n\r\n0\r\n\r\n":        errTrailerNames,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n":                errTransferEncoding,
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab":                     errContentLength,
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok":                                         errContentLength,
		"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nok":                        errContentLength,
		"HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxResponseHeadBytes) + "\r\n\r\n":     errHeadTooLarge,
		strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + "HTTP/1.1 204 No Content\r\n\r\n": errTooManyInterim,
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n":                                                io.ErrUnexpectedEOF,
		"": io.ErrUnexpectedEOF,
	}
	for raw, want := range refused {
		var r upstreamResponse
		if err := r.read(bufio.NewReader(strings.NewReader(raw)), http.MethodGet); !errors.Is(err, want) {
			t.Errorf("%.60q: got %v, want %v", raw, err, want)
		}
	}

	for _, tc := range []struct {
		raw, method    string
		status         int
		length         int64
		close          bool
		header         http.Header
		body, trailers string
	}{
		{raw: "HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", status: 200, length: 2,
			header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"2"}}, body: "ok"},
		{raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 9\r\n\r\n", status: 200, length: -1,
			header: http.Header{}, body: "ok", trailers: "X-Sum=9"},
		{raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", status: 304, length: 0,
			header: http.Header{"Content-Length": {"7"}}},
		{raw: "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", method: http.MethodHead, status: 200, length: 7,
			header: http.Header{"Content-Length": {"7"}}},
		{raw: "HTTP/1.0 200 OK\n\nuntil close", status: 200, length: -1, close: true, header: http.Header{}, body: "until close"},
		{raw: "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", status: 200, close: true,
			header: http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"no-cache"}, "Content-Length": {"0"}}},
	} {
		method := tc.method
		if method == "" {
			method = http.MethodGet
		}
		var r upstreamResponse
		if err := r.read(bufio.NewReader(strings.NewReader(tc.raw)), method); err != nil {
			t.Errorf("%q: %v", tc.raw, err)
			continue
		}
		h := http.Header{}
		r.passHeader(h, nil)
		body, err := io.ReadAll(&r.body)
		var trailers []string
		for _, f := range r.trailers {
			trailers = append(trailers, f.name+"="+f.value)
		}
		if err != nil || r.status != tc.status || r.contentLength != tc.length || r.close != tc.close ||
			!equalHeaders(h, tc.header) || string(body) != tc.body || strings.Join(trailers, ",") != tc.trailers {
			t.Errorf("%q: got %d, length %d, close %v, %v, body %q (%v), trailers %q", tc.raw, r.status, r.contentLength, r.close, h, body, err, trailers)
		}
	}
}

// BenchmarkUpstreamResponseHead reads a typical JSON answer's head and
// body and hands its header to a client's, with keygate's reader and, for
// comparison, as keygate did before with http.ReadResponse.
func BenchmarkUpstreamResponseHead(b *testing.B) {
	const answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 30 Nov 2026 23:00:00 GMT\r\n" +
		"Cache-Control: no-store\r\nX-Request-Id: 7f3c9a2e\r\nContent-Length: 24\r\n\r\n{\"products\":[],\"page\":1}"
	src := strings.NewReader(answer)
	br := bufio.NewReaderSize(src, 16<<10)
	buf := make([]byte, 512)
	b.Run("keygate", func(b *testing.B) {
		var r upstreamResponse
		b.ReportAllocs()
		for b.Loop() {
			src.Reset(answer)
			br.Reset(src)
			if err := r.read(br, http.MethodGet); err != nil {
				b.Fatal(err)
			}
			r.passHeader(make(http.Header, 8), nil)
			for {
				if _, err := r.body.Read(buf); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		req := &http.Request{Method: http.MethodGet}
		b.ReportAllocs()
		for b.Loop() {
			src.Reset(answer)
			br.Reset(src)
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				b.Fatal(err)
			}
			h := make(http.Header, 8)
			removeHopByHopHeaders(resp.Header)
			for name, values := range resp.Header {
				h[name] = values
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
}

// The upstream's fields yield to those keygate set on the client's
// response, in any spelling, except lists both add members to.
func TestPassHeaderKeepsKeygatesFields(t *testing.T) {
	const raw = "HTTP/1.1 200 OK\r\nX-Ratelimit-Remaining: 4999\r\nAccess-Control-Allow-Origin: https://a.example\r\n" +
		"Access-Control-Expose-Headers: X-Page\r\nX-Page: 2\r\nX-Page: 3\r\nContent-Length: 0\r\n\r\n"
	var r upstreamResponse
	if err := r.read(bufio.NewReader(strings.NewReader(raw)), http.MethodGet); err != nil {
		t.Fatal(err)
	}
	h := http.Header{
		"X-RateLimit-Remaining":         {"9"},
		"Access-Control-Allow-Origin":   {"*"},
		"Access-Control-Expose-Headers": {"WWW-Authenticate"},
	}
	r.passHeader(h, keygateSet(h, nil))
	want := http.Header{
		"X-RateLimit-Remaining":         {"9"},
		"Access-Control-Allow-Origin":   {"*"},
		"Access-Control-Expose-Headers": {"WWW-Authenticate", "X-Page"},
		"X-Page":                        {"2", "3"},
		"Content-Length":                {"0"},
	}
	if !equalHeaders(h, want) {
		t.Errorf("client's header %v, want %v", h, want)
	}
}
