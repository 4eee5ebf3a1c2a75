package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/internal/statusrec"
)

// Forwarder sends a request to an upstream with keygate's identity
// headers. What a client sent that could pass for keygate's word or for an
// API credential is removed first (headers.go): the upstream sees only
// what keygate vouches for.
//
// Requests go through keygate's own HTTP/1.1 client (upstream.go) on the
// handler's goroutine; only protocol upgrades (WebSocket), which hand the
// connection over, go through httputil.ReverseProxy.
type Forwarder struct {
	api     *keygate.API
	headers *upstreamHeaders
	signer  *identity.Signer
	client  *upstreamClient
	proxy   *httputil.ReverseProxy
	// tracer records the upstream call and sends its context upstream;
	// nil: no tracing, and the client's trace headers pass unchanged.
	tracer trace.Tracer
	fail   func(http.ResponseWriter, *http.Request, error)
	logger *slog.Logger
}

// forwarded is what Forward hands to the header rewrite through the
// request's context: who the request acts for and the client's address;
// and to the response's, the client's response header, which holds only
// what keygate set until the upstream's header is copied in.
type forwarded struct {
	identity *keygate.Identity
	signed   *signedIdentity
	client   netip.Addr
	header   http.Header
}

type forwardedContextKey struct{}

// NewForwarder returns a Forwarder to upstream; fail answers errors in the
// API's preset shape.
func NewForwarder(api *keygate.API, upstream *url.URL, signer *identity.Signer, fail func(http.ResponseWriter, *http.Request, error), logger *slog.Logger) *Forwarder {
	f := &Forwarder{api: api, headers: newUpstreamHeaders(api), signer: signer, client: newUpstreamClient(upstream), fail: fail, logger: logger}
	transport := upstreamTransport()
	if api.UpstreamTimeout > 0 {
		f.client.timeouts.responseHeader = api.UpstreamTimeout
		transport.ResponseHeaderTimeout = api.UpstreamTimeout
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
			f.rewriteHeaders(pr.Out)
		},
		ModifyResponse: keygateHeadersWin,
		Transport:      trailerRulesTransport{transport},
		ErrorHandler:   f.upstreamError,
	}
	return f
}

// Upstream timeouts, named so whichever client forwards keeps every one:
// an upstream that accepts a connection and then stalls (in the TLS
// handshake, or before its headers) must not hold a request forever.
var (
	upstreamDialTimeout           = 5 * time.Second
	upstreamTLSHandshakeTimeout   = 10 * time.Second
	upstreamResponseHeaderTimeout = 60 * time.Second
	upstreamIdleConnTimeout       = 90 * time.Second
)

func upstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never route upstream traffic through an environment proxy
		DialContext:           (&net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   upstreamTLSHandshakeTimeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       upstreamIdleConnTimeout,
		ResponseHeaderTimeout: upstreamResponseHeaderTimeout,
		ForceAttemptHTTP2:     true,
	}
}

// Forward proxies r as id (nil: anonymous, on public routes) for the
// client at address client.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, id *keygate.Identity, client netip.Addr) {
	if _, cut := f.forward(w, r, id, nil, client); cut {
		panic(http.ErrAbortHandler)
	}
}

// forward is Forward with id's header values ready when signed is set. It
// returns the status it answered (0: none, the client left first) and
// whether the response was then cut short, which the caller must end by
// aborting the handler (http.ErrAbortHandler) once it has counted the
// request.
//
// The upstream's answers know their status; only the rarer ones that pass
// through another writer (an upgrade, a refusal when the upstream fails)
// are recorded for it.
func (f *Forwarder) forward(w http.ResponseWriter, r *http.Request, id *keygate.Identity, signed *signedIdentity, client netip.Addr) (status int, cut bool) {
	if isUpgrade(r.Header) {
		r = r.WithContext(context.WithValue(r.Context(), forwardedContextKey{}, forwarded{identity: id, signed: signed, client: client, header: w.Header()}))
		rec := &statusrec.Recorder{ResponseWriter: w}
		f.proxy.ServeHTTP(rec, r)
		return rec.Code, false
	}
	out := cloneHeader(r.Header)
	h := out.h
	removeHopByHopHeaders(h)
	// keygate sends the body without waiting for a 100 Continue; the
	// client's server already asked for it.
	delete(h, "Expect")
	// keygate frames the body itself (writeRequest): the client's field
	// beside its own would be a second Content-Length, which Node's
	// parser refuses and other servers may read otherwise.
	delete(h, "Content-Length")
	setForwardedHeaders(out, r)
	f.identify(out, id, signed, client, r.RemoteAddr)
	var span trace.Span
	if f.tracer != nil {
		span = f.startUpstreamSpan(r, h)
	}
	resp, err := f.client.do(r, h)
	// The request's head is written: nothing reads h after this.
	out.release()
	if err != nil {
		if span != nil {
			endUpstreamSpan(span, 0, err)
		}
		rec := &statusrec.Recorder{ResponseWriter: w}
		f.upstreamError(rec, r, err)
		return rec.Code, false
	}
	// resp belongs to the upstream connection, which copyResponse hands
	// back to the pool for the next request to read into: nothing of it
	// is read afterwards.
	status = resp.status
	if span != nil {
		span.AddEvent("response headers")
		defer endUpstreamSpan(span, status, nil)
	}
	if err := copyResponse(w, resp); err != nil {
		f.bodyBrokeOff(r, err)
		// The status is sent: closing the connection short (or without
		// the last chunk) is how the client learns the body is not whole.
		return status, true
	}
	return status, false
}

// bodyBrokeOff logs an upstream body that ended before its end: reset,
// closed short, or quiet past upstream_timeout. A client that left is no
// upstream failure.
func (f *Forwarder) bodyBrokeOff(r *http.Request, err error) {
	if r.Context().Err() != nil {
		f.logger.Debug("client left during the response body", "method", r.Method, "path", loggedPath(r.URL.Path))
		return
	}
	if upstreamTimedOut(err) {
		f.logger.Warn("upstream stopped sending the response body in time; response cut short", "method", r.Method, "path", loggedPath(r.URL.Path), "error", err)
		return
	}
	f.logger.Warn("upstream response body broke off; response cut short", "method", r.Method, "path", loggedPath(r.URL.Path), "error", err)
}

// keygateHeadersWin removes from an upgrade's answer the fields that
// keygate set on the client's response, as passHeader leaves them out.
// Its trailers are trailerRulesTransport's.
func keygateHeadersWin(res *http.Response) error {
	fwd, _ := res.Request.Context().Value(forwardedContextKey{}).(forwarded)
	set := keygateSet(fwd.header, nil)
	for name := range res.Header {
		if yieldsToKeygate(set, name) {
			delete(res.Header, name)
		}
	}
	return nil
}

// trailerRulesTransport is the transport of httputil.ReverseProxy, which
// forwards upgrade requests. An upstream may answer one without
// upgrading, with a chunked body and trailers, which ReverseProxy passes
// on; trailerRulesTransport removes the trailers copyResponse leaves out
// (see trailerPasses): announced ones at once, those that come
// unannounced once the body is read. It does so here, not in
// ModifyResponse: ReverseProxy removes the Connection field from the
// header before ModifyResponse runs, and the names it lists are
// hop-by-hop for the trailers too.
type trailerRulesTransport struct{ *http.Transport }

func (t trailerRulesTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.Transport.RoundTrip(req)
	if err != nil {
		return res, err
	}
	fwd, _ := req.Context().Value(forwardedContextKey{}).(forwarded)
	set := keygateSet(fwd.header, nil)
	connection := res.Header["Connection"]
	dropTrailers := func(h http.Header) {
		for name := range h {
			if !trailerPasses(set, connection, name) {
				delete(h, name)
			}
		}
	}
	dropTrailers(res.Trailer)
	if res.StatusCode != http.StatusSwitchingProtocols {
		// A 101's body is the connection, which ReverseProxy takes
		// as it is; any other body it reads to the end and closes
		// before it copies res.Trailer.
		res.Body = &trailerFilter{ReadCloser: res.Body, res: res, drop: dropTrailers}
	}
	return res, nil
}

// trailerFilter removes from res.Trailer, once the body is closed (the
// transport fills it in as the body ends), the names drop removes.
type trailerFilter struct {
	io.ReadCloser
	res  *http.Response
	drop func(http.Header)
}

func (t *trailerFilter) Close() error {
	err := t.ReadCloser.Close()
	t.drop(t.res.Trailer)
	return err
}

func (f *Forwarder) rewriteHeaders(out *http.Request) {
	fwd, _ := out.Context().Value(forwardedContextKey{}).(forwarded)
	// An upgrade's header is ReverseProxy's, not a pooled one: wrapped
	// only to hold the values keygate sets in it.
	f.identify(&outHeader{h: out.Header}, fwd.identity, fwd.signed, fwd.client, out.RemoteAddr)
	if f.tracer != nil {
		injectTraceContext(out.Context(), out.Header)
	}
}

// identify applies keygate's header rules to an outbound header o: the
// client's claims removed, then keygate's word on the client's address and
// on who the request acts for.
//
// peer is the request's RemoteAddr, whose text X-Real-IP reuses when it is
// the client's.
func (f *Forwarder) identify(o *outHeader, id *keygate.Identity, signed *signedIdentity, client netip.Addr, peer string) {
	h := o.h
	f.headers.scrub(h)
	setClientAddress(o, client, peer)
	if id == nil {
		return
	}
	if signed != nil && signed.id == id && signed.set(h, f.signer) {
		return
	}
	if err := SetIdentityHeaders(h, id, f.signer); err != nil {
		f.logger.Error("signing identity failed", "error", err)
	}
}

// SetIdentityHeaders adds keygate's identity headers for id to h.
func SetIdentityHeaders(h http.Header, id *keygate.Identity, signer *identity.Signer) error {
	h.Set(keygate.HeaderOrganization, id.OrganizationID)
	if id.TokenID != "" {
		h.Set(keygate.HeaderTokenID, id.TokenID)
	}
	h.Set(keygate.HeaderScopes, strings.Join(id.Scopes, " "))
	if signer == nil {
		return nil
	}
	jwt, err := signer.Sign(id)
	if err != nil {
		return err
	}
	h.Set(keygate.HeaderIdentity, jwt)
	return nil
}

func (f *Forwarder) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		f.fail(w, r, errTooLarge)
		return
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; there is nobody to answer.
		return
	}
	if upstreamTimedOut(err) {
		f.logger.Warn("upstream did not answer in time", "method", r.Method, "path", loggedPath(r.URL.Path), "error", err)
		f.fail(w, r, errUpstreamSlow)
		return
	}
	f.logger.Warn("upstream request failed", "method", r.Method, "path", loggedPath(r.URL.Path), "error", err)
	f.fail(w, r, errUpstream)
}

// ForwardAs returns a function that forwards requests authenticated
// elsewhere — the MCP endpoint, by OAuth — to upstream as the given
// identity, with the same header rules, body limit, token rate limit,
// metrics and usage counts as the API's routes.
func (g *Gateway) ForwardAs(upstream *url.URL) func(http.ResponseWriter, *http.Request, *keygate.Identity) {
	f := NewForwarder(g.api, upstream, g.forward.signer, g.fail, g.logger)
	f.tracer = g.forward.tracer
	// Spans are named by the endpoint, not by the path the client chose
	// below it (/mcp/<anything>), as routes are named by their pattern.
	endpoint := "/mcp"
	if g.api.MCP != nil && g.api.MCP.Path != "" {
		endpoint = g.api.MCP.Path
	}
	return func(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
		start := g.now()
		var span trace.Span
		if g.tracing != nil {
			r, span = g.startSpan(r, r.Method+" "+endpoint, modeMCP, g.peerTrusted(r, false))
		}
		req := g.requestOf(r)
		d := Decision{Identity: id, ClientIP: req.ClientIP}
		err := g.limit(r.Context(), &d, g.api.TokenRateLimit, req)
		g.respond(w, r, d, err, f, start, span)
	}
}

// loggedPath is p as log lines show it: every run of 36 or more base62
// characters, the length of the secret part of every token keygate issues
// (API tokens, OAuth tokens, admin keys), is replaced, so a client that
// put a token in the path (a public route's parameter) does not have it
// logged.
func loggedPath(p string) string {
	const secretLength = 36
	var b strings.Builder
	done, start := 0, 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && isBase62(p[i]) {
			continue
		}
		if i-start >= secretLength {
			b.WriteString(p[done:start])
			b.WriteString("[redacted]")
			done = i
		}
		start = i + 1
	}
	if done == 0 {
		return p
	}
	b.WriteString(p[done:])
	return b.String()
}
