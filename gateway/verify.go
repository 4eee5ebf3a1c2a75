package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// The verify API's wire types live in the root package, so the Go client
// (package client) can use them without importing the gateway.
type (
	VerifyRequest   = keygate.VerifyRequest
	VerifyResponse  = keygate.VerifyResponse
	VerifyRateLimit = keygate.VerifyRateLimit
)

// VerifyHandler serves POST /api/v1/verify for services that check tokens
// in their own code. Callers authenticate with an admin key
// (Authorization: Bearer kgadm_…): the endpoint is an oracle for tokens, so
// it is not public.
//
// The admin key is looked up under its own deadline, storeTimeout (0:
// keygate.DefaultStoreTimeout), as token lookups are.
func VerifyHandler(gateways map[string]*Gateway, keys keygate.AdminKeyService, storeTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authenticateAdminKey(r, keys, storeTimeout); err != nil {
			writeAPIError(w, err)
			return
		}
		var req VerifyRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeAPIError(w, keygate.Errorf(keygate.EINVALID, "Body must be a JSON object with api, token, method and path: %s", jsonProblem(err)))
			return
		}
		g, ok := gateways[req.API]
		if !ok {
			writeAPIError(w, keygate.Errorf(keygate.EINVALID, "Unknown API %q.", req.API))
			return
		}
		gr, err := g.verifyRequestOf(req, r)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		start := g.now()
		// The caller holds an admin key: its trace context is a trusted
		// proxy's.
		r, span := g.startSpan(r, r.Method+" /api/v1/verify", modeVerify, true)
		d, err := g.Authorize(r.Context(), gr)
		if keygate.ErrorCode(err) == keygate.ECANCELED {
			g.observe(d, keygate.StatusClientClosedRequest, err, start)
			g.endSpan(span, d, keygate.StatusClientClosedRequest, err, gr.Method, false)
			return // the caller is gone
		}
		resp := g.verifyResponse(d, err)
		g.observe(d, resp.Status, err, start)
		g.endSpan(span, d, resp.Status, err, gr.Method, false)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(resp)
	})
}

func (g *Gateway) verifyRequestOf(req VerifyRequest, r *http.Request) (Request, error) {
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	u, err := url.ParseRequestURI(req.Path)
	if err != nil || !strings.HasPrefix(req.Path, "/") {
		return Request{}, keygate.Errorf(keygate.EINVALID, "path must be an absolute path such as /v2/products?states=California.")
	}
	ip := g.clientIP.ClientIP(r)
	if req.IP != "" {
		if ip, err = netip.ParseAddr(req.IP); err != nil {
			return Request{}, keygate.Errorf(keygate.EINVALID, "ip %q is not an IP address.", req.IP)
		}
	}
	h := http.Header{}
	if req.Token != "" {
		v := req.Token
		if g.preset.TokenScheme != "" {
			v = g.preset.TokenScheme + " " + v
		}
		h.Set(g.preset.TokenHeader, v)
	}
	if len(req.MethodOverride) > 0 {
		h[http.CanonicalHeaderKey(keygate.MethodOverrideHeaders[0])] = req.MethodOverride
	}
	return Request{Method: method, URL: u, Header: h, ClientIP: ip}, nil
}

func (g *Gateway) verifyResponse(d Decision, err error) VerifyResponse {
	resp := VerifyResponse{Valid: err == nil, Status: http.StatusOK, Identity: d.Identity}
	if err != nil {
		status, body := g.preset.Render(err)
		resp.Code, resp.Status, resp.Body, resp.Identity = keygate.ErrorCode(err), status, string(body), nil
	}
	if d.HasRateLimit {
		rl := d.RateLimit
		resp.RateLimit = &VerifyRateLimit{Limit: rl.Limit, Remaining: rl.Remaining, Reset: rl.ResetUnix(), RetryAfter: int64(rl.RetryAfter.Seconds())}
	}
	return resp
}

func authenticateAdminKey(r *http.Request, keys keygate.AdminKeyService, storeTimeout time.Duration) error {
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > 256 {
		return keygate.Errorf(keygate.EUNAUTHORIZED, "An admin key is required: Authorization: Bearer <admin key>.")
	}
	ctx, cancel := keygate.StoreContext(r.Context(), storeTimeout)
	defer cancel()
	// As the management API does: a malformed key (wrong prefix, length
	// or checksum) is refused without a store query.
	_, err := manage.AuthenticateAdminKey(ctx, keys, secret)
	if keygate.StoreTimedOut(r.Context(), err) {
		return errStoreUnavailable
	}
	return err
}

// writeAPIError answers in the management API's error shape.
func writeAPIError(w http.ResponseWriter, err error) {
	e := keygate.AsError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(keygate.HTTPStatus(e.Code))
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

func jsonProblem(err error) string {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return "body too large"
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return err.Error()
}
