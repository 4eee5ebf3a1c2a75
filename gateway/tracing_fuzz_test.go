package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate"
)

// keygateTraceparent is the only traceparent the upstream may see: W3C
// version 00 with keygate's own span as the parent.
var keygateTraceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

// FuzzTraceContext sends arbitrary traceparent and tracestate headers
// from a trusted proxy or an untrusted client, under each
// accept_incoming. Whatever they hold: the request is answered as
// without them; the upstream sees exactly one traceparent, keygate's
// (its span id that of keygate's upstream span); a trace is continued
// only where accept_incoming allows it, recorded only when its sampled
// flag says so, and a client's tracestate never reaches the upstream
// otherwise.
func FuzzTraceContext(f *testing.F) {
	f.Add(clientTraceparnt, "vendor=a", uint8(0), false)
	f.Add(clientTraceparnt, "vendor=a", uint8(1), true)
	f.Add(clientTraceparnt, "", uint8(2), true)
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", uint8(0), true)
	f.Add("ff-"+clientTraceID+"-"+clientSpanID+"-01", "", uint8(0), true)
	f.Add("01-"+clientTraceID+"-"+clientSpanID+"-01-extra", "a=b,c=d", uint8(0), true)
	f.Add("00-"+clientTraceID+"-"+clientSpanID+"-01\r\nX-Keygate-Org: evil", "", uint8(0), true)
	f.Add("00-"+clientTraceID+"-0000000000000000-01", "k=v", uint8(1), true)
	f.Add("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "", uint8(0), true)
	f.Add(clientTraceparnt, "x=\x00", uint8(0), true)

	fx := newFixture(f)
	_, secret := fx.token(fx.menus, []string{"products:read"}, keygate.Expiry90Days, fx.now)
	accepts := []string{"all", "trusted_proxies", "none"}
	gws := make([]http.Handler, len(accepts))
	recs := make([]func() []sdktrace.ReadOnlySpan, len(accepts))
	for i, a := range accepts {
		g, rec := tracedGateway(f, fx, a, "10.0.0.0/8")
		gws[i] = g
		recs[i] = func() []sdktrace.ReadOnlySpan { return rec.Ended() }
	}

	f.Fuzz(func(t *testing.T, traceparent, tracestate string, mode uint8, fromProxy bool) {
		if !validHeaderValue(traceparent) || !validHeaderValue(tracestate) {
			t.Skip() // net/http refuses these before keygate sees them
		}
		i := int(mode) % len(accepts)
		remote := "203.0.113.7:40000"
		if fromProxy {
			remote = "10.0.0.1:40000"
		}
		header := map[string][]string{"X-Token": {secret}, "Traceparent": {traceparent}}
		if tracestate != "" {
			header["Tracestate"] = []string{tracestate}
		}
		before := len(recs[i]())
		got := serveFrom(gws[i], remote, "GET", "/v2/products?states=California", header)
		if got.status != http.StatusOK {
			t.Fatalf("traceparent %q, tracestate %q: %d %q", traceparent, tracestate, got.status, got.body)
		}
		var seen upstreamSeen
		if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
			t.Fatalf("not the upstream's echo: %q", got.body)
		}
		tp := seen.Header.Values("Traceparent")
		if len(tp) != 1 || !keygateTraceparent.MatchString(tp[0]) {
			t.Fatalf("upstream saw traceparent %q", tp)
		}
		if ts := seen.Header.Values("Tracestate"); len(ts) > 1 {
			t.Fatalf("upstream saw tracestate %q", ts)
		}
		incoming := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.HeaderCarrier(http.Header{"Traceparent": {traceparent}, "Tracestate": header["Tracestate"]})))
		accepted := incoming.IsValid() && (accepts[i] == "all" || accepts[i] == "trusted_proxies" && fromProxy)
		spans := recs[i]()[before:]
		if accepted && !incoming.IsSampled() {
			// The trace continued says it is not sampled, and keygate
			// follows its flag: nothing is recorded, and the upstream
			// carries the trace on, unsampled.
			if len(spans) != 0 {
				t.Fatalf("unsampled trace %q recorded %d spans", traceparent, len(spans))
			}
			if want := "00-" + incoming.TraceID().String() + "-"; !strings.HasPrefix(tp[0], want) || !strings.HasSuffix(tp[0], "-00") {
				t.Fatalf("upstream saw traceparent %q, want trace %s continued unsampled", tp[0], incoming.TraceID())
			}
			return
		}
		if len(spans) != 2 {
			t.Fatalf("%d spans recorded, want the request's and the upstream call's", len(spans))
		}
		var server, upstream sdktrace.ReadOnlySpan
		for _, s := range spans {
			if s.SpanKind() == trace.SpanKindClient {
				upstream = s
			} else {
				server = s
			}
		}
		if upstream == nil || server == nil {
			t.Fatalf("spans %v: want one server and one client span", spans)
		}
		if want := "00-" + upstream.SpanContext().TraceID().String() + "-" + upstream.SpanContext().SpanID().String(); tp[0][:len(want)] != want {
			t.Fatalf("upstream saw traceparent %q, keygate's upstream span is %s", tp[0], want)
		}

		traceID := server.SpanContext().TraceID()
		switch {
		case accepted:
			if traceID != incoming.TraceID() || server.Parent().SpanID() != incoming.SpanID() {
				t.Fatalf("accepted context %v not continued: trace %s, parent %s", incoming, traceID, server.Parent().SpanID())
			}
		default:
			if server.Parent().IsValid() {
				t.Fatalf("traceparent %q (%s, proxy %v) became the parent of keygate's span", traceparent, accepts[i], fromProxy)
			}
			if incoming.IsValid() && traceID == incoming.TraceID() {
				t.Fatalf("traceparent %q (%s, proxy %v) chose keygate's trace id", traceparent, accepts[i], fromProxy)
			}
			if ts := seen.Header.Get("Tracestate"); ts != "" {
				t.Fatalf("client's tracestate %q reached the upstream without its trace being accepted", ts)
			}
		}
	})
}
