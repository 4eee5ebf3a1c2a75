package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upstreamClient is keygate's HTTP/1.1 client to one upstream. It runs a
// request on the handler's goroutine: write the request on a pooled
// connection, read the response head, stream the body back, return the
// connection. http.Transport hands every request to two goroutines per
// connection (a writer and a reader) and back, which cost a proxy on two
// cores more than everything else it does (docs/performance.md); keygate
// needs none of what that buys (HTTP/2, proxies, per-request dial races).
type upstreamClient struct {
	target   *url.URL
	address  string // host:port dialled
	host     string // Host header sent
	tls      *tls.Config
	timeouts upstreamTimeouts

	mu      sync.Mutex
	idle    []*upstreamConn // most recently used last
	maxIdle int
}

type upstreamTimeouts struct {
	dial, tlsHandshake, responseHeader, idle time.Duration
}

func defaultUpstreamTimeouts() upstreamTimeouts {
	return upstreamTimeouts{
		dial:           upstreamDialTimeout,
		tlsHandshake:   upstreamTLSHandshakeTimeout,
		responseHeader: upstreamResponseHeaderTimeout,
		idle:           upstreamIdleConnTimeout,
	}
}

// maxIdleUpstreamConns bounds the connections kept open to an upstream
// between requests.
const maxIdleUpstreamConns = 256

type upstreamConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	// abort ends the wait of the request on the connection: its method
	// value, made once rather than once per request.
	abort func()
	// idle checks the TCP socket under the connection (and under its
	// TLS) for anything that arrived while it was idle; nil where the
	// platform offers no such check.
	idle *idlePeek
	// resp is the response being read on the connection, its buffers
	// kept for the next one.
	resp upstreamResponse
}

// quiet reports whether nothing arrived on an idle connection since its
// last response was read: no bytes (which would be taken for the next
// request's answer, a response meant for nobody, or for another client)
// and no close. http.Transport learns the same from a goroutine reading
// every idle connection; here it is one non-blocking peek when the
// connection is taken.
func (pc *upstreamConn) quiet() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	return pc.idle == nil || pc.idle.socketQuiet()
}

// pastDeadline makes every read and write on a connection fail at once.
var pastDeadline = time.Unix(1, 0)

func newUpstreamClient(target *url.URL) *upstreamClient {
	c := &upstreamClient{target: target, host: target.Host, timeouts: defaultUpstreamTimeouts(), maxIdle: maxIdleUpstreamConns}
	port := target.Port()
	if port == "" {
		port = "80"
		if target.Scheme == "https" {
			port = "443"
		}
	}
	c.address = net.JoinHostPort(target.Hostname(), port)
	if target.Scheme == "https" {
		// HTTP/1.1 only: the client is a plain HTTP/1.1 connection pool.
		c.tls = &tls.Config{ServerName: target.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	return c
}

// conn returns an idle connection, or dials one. reused says which.
func (c *upstreamClient) conn(ctx context.Context) (pc *upstreamConn, reused bool, err error) {
	now := time.Now()
	for {
		c.mu.Lock()
		if len(c.idle) == 0 {
			c.mu.Unlock()
			break
		}
		pc = c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		c.mu.Unlock()
		if now.Sub(pc.idleSince) < c.timeouts.idle && pc.quiet() {
			return pc, true, nil
		}
		pc.Close()
	}
	pc, err = c.dial(ctx)
	return pc, false, err
}

func (c *upstreamClient) dial(ctx context.Context) (*upstreamConn, error) {
	d := net.Dialer{Timeout: c.timeouts.dial, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.address)
	if err != nil {
		return nil, err
	}
	var idle *idlePeek
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			idle = newIdlePeek(raw)
		}
	}
	if c.tls != nil {
		hctx, cancel := context.WithTimeout(ctx, c.timeouts.tlsHandshake)
		tc := tls.Client(conn, c.tls)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	pc := &upstreamConn{Conn: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 16<<10), idle: idle}
	pc.abort = func() { pc.SetDeadline(pastDeadline) }
	pc.resp.conn, pc.resp.client = pc, c
	return pc, nil
}

// release keeps pc for the next request, or closes it when the pool is
// full.
func (c *upstreamClient) release(pc *upstreamConn) {
	pc.idleSince = time.Now()
	c.mu.Lock()
	if len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, pc)
		pc = nil
	}
	c.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

// do sends in to the upstream with header h and reads the response head.
// A request without a body that fails on a reused connection before an
// answer (the upstream closed it while idle) is sent once more on a new
// one, as http.Transport does.
func (c *upstreamClient) do(in *http.Request, h http.Header) (*upstreamResponse, error) {
	ctx := in.Context()
	for attempt := 0; ; attempt++ {
		pc, reused, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		err = c.roundTrip(ctx, pc, in, h)
		if err == nil {
			return &pc.resp, nil
		}
		pc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !reused || attempt > 0 || !replayable(in) || !closedWhileIdle(err) || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (c *upstreamClient) roundTrip(ctx context.Context, pc *upstreamConn, in *http.Request, h http.Header) error {
	// A client that goes away stops the wait for the upstream, for the
	// response head here and for its body until finish: a client that
	// leaves a body the upstream stalls does not hold the handler.
	stop := context.AfterFunc(ctx, pc.abort)
	err := c.exchange(pc, in, h)
	if err != nil {
		stop()
		return err
	}
	pc.resp.stopAbort = stop
	return nil
}

// exchange writes the request and reads the response head into pc.resp
// (upstream_head.go).
func (c *upstreamClient) exchange(pc *upstreamConn, in *http.Request, h http.Header) error {
	ctx := in.Context()
	if err := c.writeRequest(pc.bw, in, h); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(c.timeouts.responseHeader))
	err := pc.resp.read(pc.br, in.Method)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errUpstreamTimeout
		}
		return err
	}
	// Streams (server-sent events) may stay quiet for longer than the
	// wait for the response head. Any other body must keep coming: each
	// next piece within the same timeout, as nginx's proxy_read_timeout,
	// so an upstream that stalls a body does not hold the client forever.
	if pc.resp.body.mode == bodyNone || pc.resp.eventStream() {
		pc.SetReadDeadline(time.Time{})
		return nil
	}
	pc.resp.body.idle = c.timeouts.responseHeader
	pc.resp.body.extendAt = time.Now().Add(c.timeouts.responseHeader / 4)
	pc.SetReadDeadline(time.Now().Add(c.timeouts.responseHeader))
	return nil
}

var errUpstreamTimeout = errors.New("upstream response header timeout")

// upstreamTimedOut tells a slow upstream (connect, TLS handshake or
// response head past its timeout: 504, as nginx answers) from one that
// refused or broke the connection (502). The client's own cancellation is
// handled before this is asked.
func upstreamTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, errUpstreamTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// writeRequest writes in's method, the upstream's path and query, header h
// and the body: with its Content-Length when known, chunked otherwise.
func (c *upstreamClient) writeRequest(bw *bufio.Writer, in *http.Request, h http.Header) error {
	bw.WriteString(in.Method)
	bw.WriteByte(' ')
	c.writeRequestURI(bw, in.URL)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(c.host)
	bw.WriteString("\r\n")
	for name, values := range h {
		for _, v := range values {
			bw.WriteString(name)
			bw.WriteString(": ")
			// Two byte searches: ContainsAny's general set costs more per
			// header than the rest of writing it.
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	// The server gives a request without a body ContentLength 0 and a
	// chunked one -1; a body is always set (http.NoBody, or a
	// MaxBytesReader around the client's).
	body := in.Body
	switch {
	case in.ContentLength == 0 || body == nil || body == http.NoBody:
		if methodHasBody(in.Method) {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	case in.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(in.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		n, err := io.Copy(bw, io.LimitReader(body, in.ContentLength))
		if err != nil {
			return err
		}
		if n < in.ContentLength {
			return io.ErrUnexpectedEOF
		}
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, body); err != nil {
			return err
		}
		cw.Close()
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

func methodHasBody(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// writeRequestURI writes the upstream URL's path and query joined with
// the request's, as httputil.ProxyRequest.SetURL does, in pieces rather
// than as one string built per request.
func (c *upstreamClient) writeRequestURI(bw *bufio.Writer, in *url.URL) {
	path := joinURLPath(c.target, in)
	if path == "" {
		path = "/"
	}
	bw.WriteString(path)
	query := cleanQuery(in.RawQuery)
	switch {
	case c.target.RawQuery != "" && query != "":
		bw.WriteByte('?')
		bw.WriteString(c.target.RawQuery)
		bw.WriteByte('&')
		bw.WriteString(query)
	case c.target.RawQuery != "":
		bw.WriteByte('?')
		bw.WriteString(c.target.RawQuery)
	case query != "":
		bw.WriteByte('?')
		bw.WriteString(query)
	}
}

// cleanQuery is the query keygate forwards: as sent, unless Go's parser
// cannot read all of it (a ";" separator, a bad escape), in which case
// the pairs it read, encoded again, and none of the rest, as
// httputil.ReverseProxy forwards it. Route rules check the same pairs
// (checkRules), so nothing unchecked reaches the upstream.
func cleanQuery(s string) string {
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencodeQuery(s)
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return reencodeQuery(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func reencodeQuery(s string) string {
	v, _ := url.ParseQuery(s)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func joinURLPath(target, in *url.URL) string {
	a, b := target.EscapedPath(), in.EscapedPath()
	if a == "" || a == "/" {
		return b
	}
	switch aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/"); {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// replayable is what may be sent twice: no body, and a method that means
// the same when repeated (or an idempotency key saying so).
func replayable(r *http.Request) bool {
	if r.ContentLength != 0 {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

// closedWhileIdle reports errors of a connection the upstream closed
// between requests: nothing was answered.
func closedWhileIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// close closes every idle connection.
func (c *upstreamClient) close() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, pc := range idle {
		pc.Close()
	}
}
