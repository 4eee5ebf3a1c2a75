package gateway

import (
	"net/http"
	"net/url"
)

// ForwardAuth answers GET /_keygate/auth for reverse proxies that ask
// before forwarding: nginx auth_request, Traefik ForwardAuth, Caddy
// forward_auth, Envoy ext_authz (HTTP). The original method and URI come
// from X-Forwarded-Method/X-Forwarded-Uri (Traefik, Caddy) or
// X-Original-Method/X-Original-URI (nginx). A pass is 200 with keygate's
// identity headers for the proxy to copy upstream; a refusal is the
// preset's own status and body, which the proxy relays to the client.
func (g *Gateway) ForwardAuth(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	req, err := g.forwardedRequest(r)
	var d Decision
	if err == nil {
		d, err = g.Authorize(r.Context(), req)
	}
	if d.RateLimit != nil {
		d.RateLimit.SetHeaders(w.Header())
	}
	rec := &statusRecorder{ResponseWriter: w}
	if err != nil {
		g.fail(rec, r, err)
	} else {
		g.pass(rec, d)
	}
	g.observe(d, rec.status(), err, start)
}

func (g *Gateway) forwardedRequest(r *http.Request) (Request, error) {
	method := firstHeader(r.Header, "X-Forwarded-Method", "X-Original-Method")
	if method == "" {
		method = http.MethodGet
	}
	uri := firstHeader(r.Header, "X-Forwarded-Uri", "X-Original-URI", "X-Original-Url")
	if uri == "" {
		return Request{}, errNotFound
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return Request{}, errNotFound
	}
	return Request{Method: method, URL: u, Header: r.Header, ClientIP: g.clientIP.ClientIP(r)}, nil
}

func (g *Gateway) pass(w http.ResponseWriter, d Decision) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if d.Identity != nil {
		if err := SetIdentityHeaders(h, d.Identity, g.forward.signer); err != nil {
			g.logger.Error("signing identity failed", "error", err)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
