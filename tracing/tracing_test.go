package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/tracing"
)

func TestSampleRatioDecidesNewTracesAndParentsDecideTheirs(t *testing.T) {
	sampledParent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	for _, tc := range []struct {
		ratio   float64
		parent  bool
		sampled bool
	}{
		{1, false, true},
		{0, false, false},
		{0, true, true},
	} {
		rec := tracetest.NewSpanRecorder()
		p := tracing.NewWithProcessor(config.Tracing{SampleRatio: tc.ratio}, rec, nil)
		ctx := context.Background()
		if tc.parent {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sampledParent)
		}
		_, span := p.Tracer().Start(ctx, "GET /x")
		span.End()
		if got := span.SpanContext().IsSampled(); got != tc.sampled {
			t.Errorf("ratio %v, parent %v: sampled %v, want %v", tc.ratio, tc.parent, got, tc.sampled)
		}
		if n := len(rec.Ended()); (n == 1) != tc.sampled {
			t.Errorf("ratio %v, parent %v: %d spans recorded", tc.ratio, tc.parent, n)
		}
		if err := p.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServiceName(t *testing.T) {
	for _, tc := range []struct{ config, env, want string }{
		{"", "", "keygate"},
		{"", "from-env", "from-env"},
		{"edge-gateway", "from-env", "edge-gateway"},
	} {
		t.Setenv("OTEL_SERVICE_NAME", tc.env)
		rec := tracetest.NewSpanRecorder()
		p := tracing.NewWithProcessor(config.Tracing{SampleRatio: 1, ServiceName: tc.config}, rec, nil)
		_, span := p.Tracer().Start(context.Background(), "x")
		span.End()
		var got string
		for _, kv := range rec.Ended()[0].Resource().Attributes() {
			if kv.Key == "service.name" {
				got = kv.Value.AsString()
			}
		}
		if got != tc.want {
			t.Errorf("config %q, env %q: service.name %q, want %q", tc.config, tc.env, got, tc.want)
		}
		_ = p.Shutdown(context.Background())
	}
}
