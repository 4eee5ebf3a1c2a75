package gateway

import (
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
)

// ForwardAuth answers GET /_keygate/auth for reverse proxies that ask
// before forwarding: nginx auth_request, Traefik ForwardAuth, Caddy
// forward_auth, Envoy ext_authz (HTTP). The original method and URI come
// from X-Forwarded-Method/X-Forwarded-Uri (Traefik, Caddy) or
// X-Original-Method/X-Original-URI (nginx). A pass is 200 with keygate's
// identity headers for the proxy to copy upstream; a refusal is the
// preset's own status and body, which the proxy relays to the client (or,
// for nginx, the same in headers: see HeaderRefusalStatus).
//
// Those headers decide what is checked, and a proxy passes on whatever
// else the client sent, so they are believed only from a peer allowed to
// ask (trusted_proxies or forward_auth_peers), only one header family is
// used per request, and a request carrying both families that disagree
// is refused.
func (g *Gateway) ForwardAuth(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	var span trace.Span
	if g.tracing != nil { // the span's name is not built when off
		r, span = g.startSpan(r, r.Method+" /_keygate/auth", modeForwardAuth, g.peerTrusted(r, true))
	}
	req, err := g.forwardedRequest(r)
	var d Decision
	if err == nil {
		d, err = g.Authorize(r.Context(), req)
	}
	if d.HasRateLimit {
		d.RateLimit.SetHeaders(w.Header())
	}
	// Each answer knows its status: no recorder to allocate per check.
	var status int
	switch {
	case keygate.ErrorCode(err) == keygate.ECANCELED:
		// The proxy asking is gone: nobody reads an answer.
		status = keygate.StatusClientClosedRequest
	case err != nil && wantsRefusalInHeaders(r):
		status = g.failInHeaders(w, err)
	case err != nil:
		status = g.refuse(w, r, err)
	default:
		g.pass(w, d)
		status = http.StatusOK
	}
	g.observe(d, status, err, start)
	g.endSpan(span, d, status, err, req.Method, false)
}

// defaultForwardAuthPeers may ask when the gateway's config names none:
// a proxy on the same machine.
var defaultForwardAuthPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// forwardAuthPeers is who may ask forward-auth besides trusted proxies.
type forwardAuthPeers struct {
	prefixes []netip.Prefix
	warned   atomic.Bool
}

func (p *forwardAuthPeers) contains(addr netip.Addr) bool {
	for _, pre := range p.prefixes {
		if pre.Contains(addr) {
			return true
		}
	}
	return false
}

// The header families proxies use to name the request they ask about.
var (
	forwardedFamily = headerFamily{method: "X-Forwarded-Method", uri: []string{"X-Forwarded-Uri"}}
	// Canonical spellings (X-Original-Uri for nginx's X-Original-URI):
	// looked up as they are, with no name to canonicalise per request.
	originalFamily = headerFamily{method: "X-Original-Method", uri: []string{"X-Original-Uri", "X-Original-Url"}}
)

type headerFamily struct {
	method string
	uri    []string
}

// target is what one family says: the method ("" when not sent) and URI.
type target struct {
	sent        bool
	method, uri string
}

// read returns what the family's headers say; a header sent more than
// once, or two URI headers that differ, is EINVALID.
func (f headerFamily) read(h http.Header) (target, error) {
	var t target
	for i := -1; i < len(f.uri); i++ {
		name := f.method
		if i >= 0 {
			name = f.uri[i]
		}
		switch v := h[name]; {
		case len(v) > 1:
			return target{}, errForwardedHeaders
		case len(v) == 0:
			continue
		case name == f.method:
			t.method = v[0]
		case t.uri != "" && t.uri != v[0]:
			return target{}, errForwardedHeaders
		default:
			t.uri = v[0]
		}
		t.sent = true
	}
	return t, nil
}

var errForwardedHeaders = keygate.Errorf(keygate.EINVALID, "Conflicting forwarded request headers.")

func (g *Gateway) forwardedRequest(r *http.Request) (Request, error) {
	peer := clientip.Peer(r)
	if !g.clientIP.Trusted(peer) && !g.forwardAuthPeers.contains(peer) {
		g.warnUntrustedForwardAuth(peer)
		return Request{}, errNotFound
	}
	t, err := forwardedTarget(r.Header)
	if err != nil {
		return Request{}, err
	}
	if t.uri == "" {
		return Request{}, errNotFound
	}
	u, err := url.ParseRequestURI(t.uri)
	if err != nil {
		return Request{}, errNotFound
	}
	if t.method == "" {
		t.method = http.MethodGet
	}
	return Request{Method: t.method, URL: u, Header: r.Header, ClientIP: g.clientIP.ClientIP(r)}, nil
}

// forwardedTarget picks the one family the request uses. Both sent is
// fine only when they say exactly the same: a proxy that sets one family
// passes the other on from the client unchanged.
func forwardedTarget(h http.Header) (target, error) {
	fwd, err := forwardedFamily.read(h)
	if err != nil {
		return target{}, err
	}
	orig, err := originalFamily.read(h)
	if err != nil {
		return target{}, err
	}
	switch {
	case fwd.sent && orig.sent && fwd != orig:
		return target{}, errForwardedHeaders
	case orig.sent:
		return orig, nil
	}
	return fwd, nil
}

// warnUntrustedForwardAuth says once, loudly, that forward-auth answered a
// peer it does not trust: the usual cause is a proxy missing from
// forward_auth_peers. Later ones are debug lines; clients can cause them.
func (g *Gateway) warnUntrustedForwardAuth(peer netip.Addr) {
	if g.forwardAuthPeers.warned.CompareAndSwap(false, true) {
		g.logger.Warn("forward-auth request from a peer in neither trusted_proxies nor forward_auth_peers; answered as an unknown route", "peer", peer.String())
		return
	}
	g.logger.Debug("forward-auth request from an untrusted peer", "peer", peer.String())
}

func (g *Gateway) pass(w http.ResponseWriter, d Decision) {
	h := w.Header()
	h["Cache-Control"] = noStore
	if d.Identity != nil && !(d.signed != nil && d.signed.id == d.Identity && d.signed.set(h, g.forward.signer)) {
		if err := SetIdentityHeaders(h, d.Identity, g.forward.signer); err != nil {
			g.logger.Error("signing identity failed", "error", err)
		}
	}
	w.WriteHeader(http.StatusOK)
}
