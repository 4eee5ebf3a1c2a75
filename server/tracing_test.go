package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/server"
)

// otlpReceiver is an OTLP/HTTP traces endpoint that keeps what it is sent.
type otlpReceiver struct {
	mu       sync.Mutex
	paths    []string
	requests []*collectortrace.ExportTraceServiceRequest
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "not an OTLP/HTTP protobuf export", 400)
		return
	}
	o.mu.Lock()
	o.paths = append(o.paths, r.URL.Path)
	o.requests = append(o.requests, &req)
	o.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func (o *otlpReceiver) spans() (out []receivedSpan) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, req := range o.requests {
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, receivedSpan{service: service, span: s})
				}
			}
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key != key {
			continue
		}
		switch v := kv.GetValue().Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		}
	}
	return ""
}

// keygate configured with tracing.otlp_endpoint exports its spans over
// OTLP/HTTP to that address, flushes them on shutdown, and the upstream
// gets the context of the exported upstream span.
func TestTracingExportsToTheConfiguredOTLPEndpoint(t *testing.T) {
	receiver := &otlpReceiver{}
	collector := httptest.NewServer(receiver)
	defer collector.Close()
	var upstreamTraceparent string
	var upstreamMu sync.Mutex
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamMu.Lock()
		upstreamTraceparent = r.Header.Get("Traceparent")
		upstreamMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"ok": "yes"})
	}))
	defer upstream.Close()

	r := startTraced(t, "  otlp_endpoint: "+collector.URL+"\n  service_name: keygate-test\n", upstream.URL)
	tok, secret := r.token(t)
	if code, body, _ := fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret); code != 200 {
		t.Fatalf("allowed request: %d %s", code, body)
	}
	// The last character changed: "x" alone would leave a secret that
	// already ends with it (one in 62) the right one.
	last := "x"
	if strings.HasSuffix(secret, last) {
		last = "y"
	}
	if code, _, _ := fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret[:len(secret)-1]+last); code != 401 {
		t.Fatalf("refused request: %d", code)
	}
	// Nothing is exported yet (batches leave every 5 s); shutdown flushes.
	if err := r.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans := receiver.spans()
	byName := map[string][]*tracepb.Span{}
	for _, s := range spans {
		if s.service != "keygate-test" {
			t.Errorf("span %q from service %q", s.span.Name, s.service)
		}
		byName[s.span.Name] = append(byName[s.span.Name], s.span)
	}
	if len(spans) != 3 || len(byName["GET /attendees"]) != 2 || len(byName["upstream GET"]) != 1 {
		t.Fatalf("exported spans %v, want two GET /attendees and one upstream GET", byName)
	}
	for _, p := range receiver.paths {
		if p != "/v1/traces" {
			t.Errorf("exported to %s, want /v1/traces", p)
		}
	}
	var allowed, refused *tracepb.Span
	for _, s := range byName["GET /attendees"] {
		if spanAttr(s, "keygate.outcome") == "allowed" {
			allowed = s
		} else {
			refused = s
		}
	}
	if allowed == nil || refused == nil {
		t.Fatal("want one allowed and one refused request span")
	}
	if spanAttr(allowed, "keygate.token.id") != tok.ID || spanAttr(allowed, "http.response.status_code") != "200" || spanAttr(allowed, "keygate.api") != "events" {
		t.Errorf("allowed span attributes %v", allowed.Attributes)
	}
	if spanAttr(refused, "keygate.refusal") != "token_invalid" || spanAttr(refused, "http.response.status_code") != "401" {
		t.Errorf("refused span attributes %v", refused.Attributes)
	}
	up := byName["upstream GET"][0]
	if !bytes.Equal(up.ParentSpanId, allowed.SpanId) || !bytes.Equal(up.TraceId, allowed.TraceId) {
		t.Error("the upstream span is not the allowed request's child")
	}
	upstreamMu.Lock()
	got := upstreamTraceparent
	upstreamMu.Unlock()
	if want := "00-" + hex.EncodeToString(up.TraceId) + "-" + hex.EncodeToString(up.SpanId) + "-01"; got != want {
		t.Errorf("upstream got traceparent %q, want %q", got, want)
	}
	for _, s := range spans {
		for _, kv := range s.span.Attributes {
			if strings.Contains(kv.GetValue().String(), secret[:len(secret)-1]) {
				t.Errorf("span %q attribute %s carries the token", s.span.Name, kv.Key)
			}
		}
	}
	if strings.Contains(r.logs.String(), "exporting traces failed") {
		t.Errorf("export failures logged: %s", r.logs.String())
	}
}

// startTraced runs keygate with the tracing settings tracingYAML (indented
// under "tracing:") and one canskan API in front of upstream. The test
// shuts it down.
func startTraced(t *testing.T, tracingYAML, upstream string) *running {
	t.Helper()
	r := &running{admin: freeAddr(t), events: freeAddr(t), logs: &logtest.Buffer{}}
	cfg := parseConfig(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+r.admin+`}
tracing:
`+tracingYAML+`apis:
  - name: events
    preset: canskan
    listen: `+r.events+`
    upstream: `+upstream+`
    token_prefix: ev_
    scopes: [attendees:read]
    routes:
      - {methods: [GET], path: /attendees, access: token, scopes: [attendees:read]}
`)
	r.srv = newServer(t, cfg, server.Options{Logger: debugLogger(r.logs), Version: "v9.9.9-test"})
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// A collector that cannot be reached costs requests nothing; the spans
// shutdown could not export are reported in the log.
func TestTracingCollectorDownLeavesRequestsAlone(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	r := startTraced(t, "  otlp_endpoint: http://"+dead+"\n", echoUpstream(t).URL)
	_, secret := r.token(t)
	for range 3 {
		if code, body, _ := fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret); code != 200 {
			t.Fatalf("with the collector down: %d %s", code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	if logs := r.logs.String(); !strings.Contains(logs, "exporting traces failed") || strings.Contains(logs, secret) {
		t.Errorf("the failed export is not logged, or the log holds the token: %s", logs)
	}
}

// OTEL_SDK_DISABLED=true turns tracing off whatever the file says: nothing
// is exported and the client's traceparent passes as any header.
func TestTracingOffWithOTELSDKDisabled(t *testing.T) {
	t.Setenv("OTEL_SDK_DISABLED", "true")
	receiver := &otlpReceiver{}
	collector := httptest.NewServer(receiver)
	defer collector.Close()
	seen := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Traceparent")
	}))
	defer upstream.Close()
	r := startTraced(t, "  otlp_endpoint: "+collector.URL+"\n", upstream.URL)
	_, secret := r.token(t)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if code, _, _ := fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret, "Traceparent", parent); code != 200 {
		t.Fatalf("status %d", code)
	}
	if got := <-seen; got != parent {
		t.Errorf("upstream traceparent %q, want the client's", got)
	}
	if err := r.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(receiver.spans()); n != 0 || !strings.Contains(r.logs.String(), "OTEL_SDK_DISABLED") {
		t.Errorf("%d spans exported; logs: %s", n, r.logs.String())
	}
}
