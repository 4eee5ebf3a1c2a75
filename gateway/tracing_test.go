package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/manage"
)

// A client's trace context: trace 4bf9…4736, its span 00f0…02b7, sampled.
const (
	clientTraceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID     = "00f067aa0ba902b7"
	clientTraceparnt = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// tracedGateway is f's menus API behind a gateway that records its spans,
// with trusted as the resolver's trusted proxies.
func tracedGateway(t testing.TB, f *fixture, accept string, trusted ...string) (*gateway.Gateway, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	resolver, err := clientip.New(trusted)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{API: f.menus, Tokens: f.tokens, ClientIP: resolver, Signer: f.signer,
		Tracing: &gateway.Tracing{Tracer: tp.Tracer("test"), AcceptIncoming: accept}})
	if err != nil {
		t.Fatal(err)
	}
	return g, rec
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if g, ok := got[attribute.Key(k)]; !ok || g.Emit() != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name(), k, g.Emit(), v)
		}
	}
}

// noSecretIn fails when any attribute, event or link of the spans holds
// the token, its hash or all but its last characters.
func noSecretIn(t *testing.T, spans []sdktrace.ReadOnlySpan, secret string) {
	t.Helper()
	hash := keygate.HashToken(secret)
	for _, s := range spans {
		var values []string
		for _, kv := range s.Attributes() {
			values = append(values, kv.Value.Emit())
		}
		for _, e := range s.Events() {
			values = append(values, e.Name)
			for _, kv := range e.Attributes {
				values = append(values, kv.Value.Emit())
			}
		}
		values = append(values, s.Name(), s.Status().Description)
		for _, v := range values {
			if strings.Contains(v, secret) || strings.Contains(v, hash) {
				t.Errorf("span %q carries the token: %q", s.Name(), v)
			}
			if strings.Contains(v, secret[:len(secret)-4]) {
				t.Errorf("span %q carries most of the token: %q", s.Name(), v)
			}
		}
	}
}

func TestTracingProxySpanAndUpstreamTraceparent(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	g, rec := tracedGateway(t, f, "trusted_proxies")

	// From a client that is not a trusted proxy: its context becomes a
	// link, not the parent.
	got := serveFrom(g, "203.0.113.7:40000", "GET", "/v2/products?states=California&page=1", http.Header{
		"X-Token": {secret}, "Traceparent": {clientTraceparnt}, "Tracestate": {"client=chosen"},
	})
	if got.status != 200 {
		t.Fatalf("status %d %s", got.status, got.body)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want the upstream's and the request's", len(spans))
	}
	upstream, server := spans[0], spans[1]
	if server.Name() != "GET /v2/products" || server.SpanKind() != trace.SpanKindServer {
		t.Errorf("server span %q kind %v", server.Name(), server.SpanKind())
	}
	wantAttrs(t, server, map[string]string{
		"keygate.api": "cannmenus", "keygate.preset": "cannmenus", "keygate.mode": "proxy",
		"http.request.method": "GET", "http.route": "/v2/products", "keygate.route": "/v2/products",
		"http.response.status_code": "200", "keygate.outcome": "allowed",
		"keygate.organization.id": f.org.ID, "keygate.token.id": tok.ID, "keygate.plan": "free",
		"client.address": "203.0.113.7",
	})
	if _, ok := attrs(server)["keygate.refusal"]; ok {
		t.Error("an allowed request carries keygate.refusal")
	}
	if server.Parent().IsValid() || server.SpanContext().TraceID().String() == clientTraceID {
		t.Errorf("an untrusted client's context was continued: parent %v", server.Parent())
	}
	if l := server.Links(); len(l) != 1 || l[0].SpanContext.TraceID().String() != clientTraceID || l[0].SpanContext.SpanID().String() != clientSpanID {
		t.Errorf("links %+v, want the client's context", l)
	}

	if upstream.Name() != "upstream GET" || upstream.SpanKind() != trace.SpanKindClient {
		t.Errorf("upstream span %q kind %v", upstream.Name(), upstream.SpanKind())
	}
	if upstream.Parent().SpanID() != server.SpanContext().SpanID() || upstream.SpanContext().TraceID() != server.SpanContext().TraceID() {
		t.Errorf("upstream span's parent %v, want the server span %v", upstream.Parent(), server.SpanContext())
	}
	wantAttrs(t, upstream, map[string]string{"http.response.status_code": "200", "server.address": "127.0.0.1"})
	if ev := upstream.Events(); len(ev) != 1 || ev[0].Name != "response headers" {
		t.Errorf("upstream events %+v", ev)
	}
	if !upstream.StartTime().Before(upstream.EndTime()) || upstream.StartTime().Before(server.StartTime()) || upstream.EndTime().After(server.EndTime()) {
		t.Error("the upstream span does not lie within the request's")
	}

	var seen upstreamSeen
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatal(err)
	}
	want := "00-" + upstream.SpanContext().TraceID().String() + "-" + upstream.SpanContext().SpanID().String() + "-01"
	if v := seen.Header.Values("Traceparent"); len(v) != 1 || v[0] != want {
		t.Errorf("upstream got traceparent %v, want [%s]", v, want)
	}
	if v := seen.Header.Values("Tracestate"); len(v) != 0 {
		t.Errorf("the client's tracestate reached the upstream: %v", v)
	}
	noSecretIn(t, spans, secret)
}

func TestTracingContinuesATrustedProxysTrace(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	header := http.Header{"X-Token": {secret}, "Traceparent": {clientTraceparnt}, "Tracestate": {"lb=7"}}
	for _, tc := range []struct {
		accept, remote string
		continued      bool
	}{
		{"trusted_proxies", "10.0.0.5:1234", true},
		{"trusted_proxies", "203.0.113.7:1234", false},
		{"all", "203.0.113.7:1234", true},
		{"none", "10.0.0.5:1234", false},
	} {
		g, rec := tracedGateway(t, f, tc.accept, "10.0.0.0/8")
		got := serveFrom(g, tc.remote, "GET", "/v2/products", header)
		if got.status != 200 {
			t.Fatalf("%s from %s: status %d", tc.accept, tc.remote, got.status)
		}
		spans := rec.Ended()
		upstream, server := spans[0], spans[1]
		continued := server.Parent().SpanID().String() == clientSpanID && server.SpanContext().TraceID().String() == clientTraceID
		if continued != tc.continued {
			t.Errorf("%s from %s: continued %v, want %v", tc.accept, tc.remote, continued, tc.continued)
		}
		var seen upstreamSeen
		_ = json.Unmarshal([]byte(got.body), &seen)
		want := "00-" + upstream.SpanContext().TraceID().String() + "-" + upstream.SpanContext().SpanID().String() + "-01"
		if seen.Header.Get("Traceparent") != want {
			t.Errorf("%s from %s: upstream traceparent %q, want %q", tc.accept, tc.remote, seen.Header.Get("Traceparent"), want)
		}
		if wantState := map[bool]string{true: "lb=7", false: ""}[tc.continued]; seen.Header.Get("Tracestate") != wantState {
			t.Errorf("%s from %s: upstream tracestate %q, want %q", tc.accept, tc.remote, seen.Header.Get("Tracestate"), wantState)
		}
	}
}

func TestTracingRecordsRefusalsWithoutUpstreamSpan(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	g, rec := tracedGateway(t, f, "")
	bad := secret[:len(secret)-8] + "AAAAAAAA"
	for _, tc := range []struct {
		name, target, token, refusal, route string
		status                              int
	}{
		{"invalid token", "/v2/products", bad, keygate.ETOKENINVALID, "/v2/products", 404},
		{"missing scope", "/v2/analytics", secret, keygate.ESCOPE, "/v2/analytics", 403},
		{"unknown route", "/v2/secret-path", secret, keygate.ENOTFOUND, "", 404},
	} {
		rec.Reset()
		got := serveFrom(g, "203.0.113.7:1", "GET", tc.target, http.Header{"X-Token": {tc.token}})
		if got.status != tc.status {
			t.Fatalf("%s: status %d", tc.name, got.status)
		}
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("%s: %d spans, want the request's only", tc.name, len(spans))
		}
		s := spans[0]
		wantAttrs(t, s, map[string]string{"keygate.outcome": "refused", "keygate.refusal": tc.refusal,
			"http.response.status_code": strconv.Itoa(tc.status)})
		wantName := "GET"
		if tc.route != "" {
			wantName = "GET " + tc.route
		}
		if s.Name() != wantName {
			t.Errorf("%s: span %q, want %q", tc.name, s.Name(), wantName)
		}
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "secret-path") {
				t.Errorf("%s: the unmatched path was recorded in %s", tc.name, kv.Key)
			}
		}
		noSecretIn(t, spans, tc.token)
	}
}

func TestTracingForwardAuthContinuesTheProxysTrace(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	g, rec := tracedGateway(t, f, "")
	got := serveFrom(g, "127.0.0.1:5000", "GET", "/_keygate/auth", http.Header{
		"X-Token": {secret}, "X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/v2/products?states=California"},
		"Traceparent": {clientTraceparnt},
	})
	if got.status != 200 {
		t.Fatalf("forward-auth: %d %s", got.status, got.body)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Name() != "GET /_keygate/auth" || s.Parent().SpanID().String() != clientSpanID {
		t.Errorf("span %q parent %v: want GET /_keygate/auth under the proxy's span", s.Name(), s.Parent())
	}
	wantAttrs(t, s, map[string]string{"keygate.mode": "forward_auth", "keygate.route": "/v2/products",
		"keygate.request.method": "GET", "keygate.outcome": "allowed", "keygate.token.id": tok.ID, "http.response.status_code": "200"})
	if _, ok := attrs(s)["http.route"]; ok {
		t.Error("forward-auth's span names the checked route as its own http.route")
	}
	noSecretIn(t, spans, secret)
}

// With tracing off the gateway leaves trace headers to the client and the
// upstream, as any header it has no word on.
func TestTracingOffPassesTraceHeadersUnchanged(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	got := serveFrom(f.menusGW, "203.0.113.7:1", "GET", "/v2/products", http.Header{"X-Token": {secret}, "Traceparent": {clientTraceparnt}})
	var seen upstreamSeen
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatal(err)
	}
	if seen.Header.Get("Traceparent") != clientTraceparnt {
		t.Errorf("upstream traceparent %q, want the client's", seen.Header.Get("Traceparent"))
	}
}

func TestTracingVerifyCall(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	_, adminSecret, err := manage.CreateAdminKey(context.Background(), f.store, "t", f.now)
	if err != nil {
		t.Fatal(err)
	}
	g, rec := tracedGateway(t, f, "")
	h := gateway.VerifyHandler(map[string]*gateway.Gateway{"cannmenus": g}, f.store, 0)
	for _, tc := range []struct {
		query, outcome, refusal string
	}{
		{"states=California", "allowed", ""},
		{"states=Oregon", "refused", keygate.EENTITLEMENT},
	} {
		rec.Reset()
		req := httptest.NewRequest("POST", "/api/v1/verify", strings.NewReader(`{"api":"cannmenus","token":"`+secret+`","path":"/v2/products?`+tc.query+`"}`))
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		req.Header.Set("Traceparent", clientTraceparnt)
		h.ServeHTTP(httptest.NewRecorder(), req)
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("%s: %d spans", tc.query, len(spans))
		}
		s := spans[0]
		if s.Name() != "POST /api/v1/verify" || s.Parent().SpanID().String() != clientSpanID {
			t.Errorf("%s: span %q parent %v", tc.query, s.Name(), s.Parent())
		}
		wantAttrs(t, s, map[string]string{"keygate.mode": "verify", "keygate.route": "/v2/products", "keygate.outcome": tc.outcome,
			"keygate.token.id": tok.ID, "keygate.organization.id": f.org.ID})
		if tc.refusal != "" {
			wantAttrs(t, s, map[string]string{"keygate.refusal": tc.refusal, "http.response.status_code": "403"})
		}
		noSecretIn(t, spans, secret)
		noSecretIn(t, spans, adminSecret)
	}
}

// Calls forwarded to the MCP upstream after OAuth get the same spans, with
// the OAuth client instead of a token, and never the access token; the
// span is named by the endpoint, not by a path the client chose below it.
func TestTracingForwardedMCPCall(t *testing.T) {
	f := newFixture(t)
	g, rec := tracedGateway(t, f, "")
	u, _ := url.Parse(f.upstream.URL)
	forward := g.ForwardAs(u)
	id := &keygate.Identity{OrganizationID: f.org.ID, Plan: "free", ClientID: "kgc_1", UserID: "usr_a", Scopes: []string{"products:read"}, API: "cannmenus"}
	req := httptest.NewRequest("POST", "/mcp/chosen-by-the-client-1234", strings.NewReader(`{}`))
	req.RemoteAddr = "203.0.113.9:5000"
	const accessToken = "kgo_at_secretsecretsecret"
	req.Header.Set("Authorization", "Bearer "+accessToken)
	w := httptest.NewRecorder()
	forward(w, req, id)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	upstream, server := spans[0], spans[1]
	if server.Name() != "POST /mcp" || upstream.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("spans %q and %q (parent %v)", server.Name(), upstream.Name(), upstream.Parent())
	}
	wantAttrs(t, server, map[string]string{"keygate.mode": "mcp", "keygate.oauth.client_id": "kgc_1",
		"keygate.organization.id": f.org.ID, "keygate.outcome": "allowed", "http.response.status_code": "200"})
	if _, ok := attrs(server)["keygate.token.id"]; ok {
		t.Error("an OAuth call carries a token id")
	}
	var seen upstreamSeen
	_ = json.Unmarshal(w.Body.Bytes(), &seen)
	if want := "00-" + upstream.SpanContext().TraceID().String() + "-" + upstream.SpanContext().SpanID().String() + "-01"; seen.Header.Get("Traceparent") != want {
		t.Errorf("MCP upstream traceparent %q, want %q", seen.Header.Get("Traceparent"), want)
	}
	noSecretIn(t, spans, accessToken)
}

// A client may send any method, as long as the header limit allows: spans
// record HTTP's own methods as they are and any other as "_OTHER" (as
// OpenTelemetry's conventions say), so that no client writes kilobytes of
// its choosing into every span's name and attributes, or gives each span
// a name of its own.
func TestTracingRecordsAnUnknownMethodAsOther(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	g, rec := tracedGateway(t, f, "trusted_proxies")
	for _, method := range []string{strings.Repeat("X", 8000), "get", "PROPFIND"} {
		got := serveFrom(g, "203.0.113.7:40000", method, "/v2/products?states=California", http.Header{"X-Token": {secret}})
		if got.status != 404 {
			t.Fatalf("%.20s: status %d %s", method, got.status, got.body)
		}
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want one per request", len(spans))
	}
	for _, s := range spans {
		if s.Name() != "_OTHER" {
			t.Errorf("span named %.40q, want _OTHER", s.Name())
		}
		wantAttrs(t, s, map[string]string{"http.request.method": "_OTHER"})
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); len(v) > 100 {
				t.Errorf("span attribute %s holds %d bytes", kv.Key, len(v))
			}
		}
	}
}
