package gateway

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
)

// Tracing turns on a span per request: what was asked (the route
// pattern, never the raw path a client may invent), for whom (organization
// and token ids, never the token) and the outcome, with a child span for
// the upstream call whose context the upstream receives as W3C
// traceparent. Without it (Config.Tracing nil) the gateway does no tracing
// work at all: every hook below is a nil check.
type Tracing struct {
	Tracer trace.Tracer
	// AcceptIncoming says whose traceparent a request continues:
	// "trusted_proxies" (the default), "all" or "none". A context not
	// accepted becomes a link of a new trace, so clients choose neither
	// trace ids nor sampling.
	AcceptIncoming string
}

// Span attribute keys keygate sets besides the HTTP semantic conventions.
const (
	AttrAPI            = attribute.Key("keygate.api")
	AttrPreset         = attribute.Key("keygate.preset")
	AttrMode           = attribute.Key("keygate.mode") // proxy, forward_auth, verify, mcp
	AttrRoute          = attribute.Key("keygate.route")
	AttrRequestMethod  = attribute.Key("keygate.request.method")
	AttrOutcome        = attribute.Key("keygate.outcome") // allowed or refused
	AttrRefusal        = attribute.Key("keygate.refusal") // the error code, e.g. ETOKENINVALID
	AttrOrganizationID = attribute.Key("keygate.organization.id")
	AttrTokenID        = attribute.Key("keygate.token.id")
	AttrOAuthClientID  = attribute.Key("keygate.oauth.client_id")
	AttrPlan           = attribute.Key("keygate.plan")
	AttrRateRemaining  = attribute.Key("keygate.rate_limit.remaining")
)

// Modes, the ways a decision is asked for.
const (
	modeProxy       = "proxy"
	modeForwardAuth = "forward_auth"
	modeVerify      = "verify"
	modeMCP         = "mcp"
)

// traceContext reads and writes traceparent and tracestate. Baggage is
// not propagated: it is whatever the client wrote.
var traceContext = propagation.TraceContext{}

type tracing struct {
	tracer trace.Tracer
	accept string
	attrs  []attribute.KeyValue // the API's, on every span
}

func newTracing(t *Tracing, api *keygate.API) *tracing {
	if t == nil || t.Tracer == nil {
		return nil
	}
	accept := t.AcceptIncoming
	if accept == "" {
		accept = "trusted_proxies"
	}
	attrs := []attribute.KeyValue{AttrAPI.String(api.Name)}
	if api.Preset != nil {
		attrs = append(attrs, AttrPreset.String(api.Preset.Name))
	}
	return &tracing{tracer: t.Tracer, accept: accept, attrs: attrs}
}

// startSpan begins the server span of r, named name until the decision
// renames it, and returns r carrying it. peerTrusted says whether r's peer
// may continue its trace under accept_incoming: trusted_proxies. With
// tracing off it returns r and a nil span.
func (g *Gateway) startSpan(r *http.Request, name, mode string, peerTrusted bool) (*http.Request, trace.Span) {
	t := g.tracing
	if t == nil {
		return r, nil
	}
	ctx := r.Context()
	method := spanMethod(r.Method)
	if method != r.Method {
		// name starts with the client's method (see the callers).
		name = method + strings.TrimPrefix(name, r.Method)
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(t.attrs...),
		trace.WithAttributes(AttrMode.String(mode), attribute.String("http.request.method", method)),
	}
	if incoming := trace.SpanContextFromContext(traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))); incoming.IsValid() {
		accepted := t.accept == "all" || (t.accept == "trusted_proxies" && peerTrusted)
		if accepted {
			ctx = trace.ContextWithRemoteSpanContext(ctx, incoming)
		} else {
			opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: incoming}))
		}
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	return r.WithContext(ctx), span
}

// spanMethod is a request's method as spans record it: HTTP's own as
// they are, anything else "_OTHER", as OpenTelemetry's conventions say.
// A client may send any token as its method, up to the header limit;
// recorded as sent, it would put kilobytes of the client's choosing into
// every span and give each span a name of its own.
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return m
	}
	return "_OTHER"
}

// peerTrusted reports whether r comes from a trusted proxy, or, for
// forward-auth, from a peer allowed to ask.
func (g *Gateway) peerTrusted(r *http.Request, forwardAuth bool) bool {
	if g.tracing == nil {
		return false
	}
	peer := clientip.Peer(r)
	return g.clientIP.Trusted(peer) || (forwardAuth && g.forwardAuthPeers.contains(peer))
}

// endSpan records the decision d and its answer on span and ends it.
// Only ids are recorded: never a token, its hash or hint, nor a query.
func (g *Gateway) endSpan(span trace.Span, d Decision, status int, err error, method string, renameByRoute bool) {
	if span == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs, attribute.Int("http.response.status_code", status))
	if d.ClientIP.IsValid() {
		attrs = append(attrs, attribute.String("client.address", d.ClientIP.String()))
	}
	if d.Route != nil {
		pattern := g.routes.patternOf(d.Route)
		method = spanMethod(method)
		attrs = append(attrs, AttrRoute.String(pattern), AttrRequestMethod.String(method))
		if renameByRoute {
			attrs = append(attrs, attribute.String("http.route", pattern))
			span.SetName(method + " " + pattern)
		}
	}
	if err == nil {
		attrs = append(attrs, AttrOutcome.String("allowed"))
	} else {
		attrs = append(attrs, AttrOutcome.String("refused"), AttrRefusal.String(keygate.ErrorCode(err)))
	}
	if id := d.Identity; id != nil {
		attrs = append(attrs, AttrOrganizationID.String(id.OrganizationID), AttrPlan.String(id.Plan))
		if id.TokenID != "" {
			attrs = append(attrs, AttrTokenID.String(id.TokenID))
		}
		if id.ClientID != "" {
			attrs = append(attrs, AttrOAuthClientID.String(id.ClientID))
		}
	}
	if d.HasRateLimit {
		attrs = append(attrs, AttrRateRemaining.Int(d.RateLimit.Remaining))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status)+" "+keygate.ErrorCode(err))
	}
	span.End()
}

// startUpstreamSpan begins the client span of the upstream call of r and
// writes its context into h, replacing any traceparent or tracestate the
// client sent.
func (f *Forwarder) startUpstreamSpan(r *http.Request, h http.Header) trace.Span {
	host, port, _ := net.SplitHostPort(f.client.address)
	n, _ := strconv.Atoi(port)
	method := spanMethod(r.Method)
	ctx, span := f.tracer.Start(r.Context(), "upstream "+method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("server.address", host),
			attribute.Int("server.port", n),
		))
	injectTraceContext(ctx, h)
	return span
}

// injectTraceContext sets h's traceparent (and tracestate) to the span
// context in ctx, replacing whatever the client sent. It writes the
// headers itself rather than through propagation.HeaderCarrier: handing h
// to an interface would move Forward's header copy to the heap on every
// request, traced or not.
func injectTraceContext(ctx context.Context, h http.Header) {
	delete(h, "Traceparent")
	delete(h, "Tracestate")
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	flags := "-00"
	if sc.IsSampled() {
		flags = "-01"
	}
	h["Traceparent"] = []string{"00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + flags}
	if ts := sc.TraceState().String(); ts != "" {
		h["Tracestate"] = []string{ts}
	}
}

// endUpstreamSpan ends span with the upstream's answer, or the error that
// left none.
func endUpstreamSpan(span trace.Span, status int, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "upstream request failed")
		span.RecordError(err)
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(status))
		}
	}
	span.End()
}
