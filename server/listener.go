package server

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// limitListener accepts at most max connections at a time; further
// clients wait in the kernel's accept queue until one closes. Each
// listener has its own limit, so a flood on one API's listener leaves the
// admin listener (and /healthz) and the other APIs answering, and the
// limits together keep the process below its file descriptor limit.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// boundBodyReads makes a request body's reads keep pace: each read must
// bring bytes within idle, and the whole body must arrive within total.
// Past either the read fails, the connection is closed, and its slot is
// free for another client: a client trickling a body (or not sending the
// body it announced) holds a connection for seconds, not forever. The
// deadline stays set after the handler returns, so a body the handler
// refused without reading is not waited for either. Requests without a
// body get no read deadline: a streaming response (SSE on /mcp) must not
// be cut by one.
func boundBodyReads(h http.Handler, idle, total time.Duration) http.Handler {
	if idle <= 0 && total <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		b := &boundedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle}
		if total > 0 {
			b.end = time.Now().Add(total)
		}
		b.extend()
		r.Body = b
		h.ServeHTTP(w, r)
	})
}

type boundedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time // zero: no total bound
	eof  bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && !b.eof:
		// The whole body is in: lift the deadline, so the connection's
		// wait for a client that goes away during a long response
		// (which net/http does by reading) is not cut short.
		b.eof = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err == nil:
		b.extend()
	}
	return n, err
}

func (b *boundedBody) extend() {
	deadline := b.end
	if b.idle > 0 {
		if next := time.Now().Add(b.idle); deadline.IsZero() || next.Before(deadline) {
			deadline = next
		}
	}
	_ = b.rc.SetReadDeadline(deadline)
}

// counted keeps s.inFlight: a Shutdown past its grace waits for the
// requests it cancelled to be counted.
func (s *Server) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// httpServer is an http.Server with the config's listener limits.
func (s *Server) httpServer(name string, h http.Handler) *http.Server {
	l := s.cfg.Listeners
	srv := &http.Server{
		Handler:           s.counted(boundBodyReads(h, l.BodyIdleTimeout, l.BodyTimeout)),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	if name == adminListener {
		// Nothing on the admin listener streams, so a whole response has
		// a deadline there; API listeners forward streams (SSE on /mcp)
		// and long downloads, which the upstream's own timeouts bound.
		srv.WriteTimeout = l.AdminWriteTimeout
	}
	return srv
}

const adminListener = "admin"
