// Package tracing exports keygate's request spans to an OpenTelemetry
// collector over OTLP/HTTP (protobuf). The gateway records the spans
// through the OpenTelemetry API (gateway.Tracing); this package owns the
// SDK around them: the exporter, the batching, the sampler and the
// resource that names the service.
//
// It never sees a token: span attributes carry ids only (gateway/tracing.go).
// Export failures are logged without the collector's URL, which may carry
// credentials.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/config"
)

// Provider is a running trace pipeline; Shutdown flushes what is buffered.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// InstrumentationName names the tracer the gateway's spans come from.
const InstrumentationName = "github.com/keygate/keygate/gateway"

// Disabled reports whether the environment turns tracing off whatever
// the config says (OTEL_SDK_DISABLED=true, as every OpenTelemetry SDK
// reads it).
func Disabled() bool { return strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") }

// New starts exporting to cfg.OTLPEndpoint; cfg must be enabled.
// version is the service.version attribute ("" leaves it out).
// The standard OTEL_EXPORTER_OTLP_* variables (headers, timeout,
// compression, certificates) and OTEL_RESOURCE_ATTRIBUTES apply; the
// endpoint is the config's.
func New(ctx context.Context, cfg config.Tracing, version string, logger *slog.Logger) (*Provider, error) {
	if !cfg.Enabled() {
		return nil, errors.New("tracing: no otlp_endpoint")
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := newResource(ctx, cfg, version)
	if err != nil {
		return nil, err
	}
	return newProvider(cfg, res, sdktrace.NewBatchSpanProcessor(exp), logger), nil
}

// NewWithProcessor builds a Provider that hands its spans to p, for tests
// and for embedding keygate with another exporter.
func NewWithProcessor(cfg config.Tracing, p sdktrace.SpanProcessor, logger *slog.Logger) *Provider {
	res, _ := newResource(context.Background(), cfg, "")
	return newProvider(cfg, res, p, logger)
}

func newProvider(cfg config.Tracing, res *resource.Resource, p sdktrace.SpanProcessor, logger *slog.Logger) *Provider {
	if logger == nil {
		logger = slog.Default()
	}
	setErrorLogger(logger)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithSpanProcessor(p),
	)
	return &Provider{tp: tp}
}

func newResource(ctx context.Context, cfg config.Tracing, version string) (*resource.Resource, error) {
	name := cfg.ServiceName
	if name == "" {
		name = os.Getenv("OTEL_SERVICE_NAME")
	}
	if name == "" {
		name = "keygate"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	// Later detectors win: the config's name over OTEL_RESOURCE_ATTRIBUTES.
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(), resource.WithAttributes(attrs...))
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}

// Tracer returns the tracer the gateway records with.
func (p *Provider) Tracer() trace.Tracer { return p.tp.Tracer(InstrumentationName) }

// ShutdownTimeout bounds the final export: a collector that is down must
// not hold keygate's exit for the exporter's minute of retries.
const ShutdownTimeout = 5 * time.Second

// Shutdown exports what is buffered (until ctx ends, ShutdownTimeout at
// most) and stops.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing spans: %w", err)
	}
	return nil
}

// The SDK reports export failures through one process-wide handler; it
// logs to the logger of the latest Provider, at most one line a minute,
// since a collector that is down fails every batch.
type errorLog struct {
	logger *slog.Logger
	last   atomic.Int64 // when it last logged, Unix nanoseconds
}

var (
	currentErrorLog atomic.Pointer[errorLog]
	handlerLinked   atomic.Bool
)

const errorLogInterval = time.Minute

func setErrorLogger(l *slog.Logger) {
	currentErrorLog.Store(&errorLog{logger: l})
	if handlerLinked.CompareAndSwap(false, true) {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			el := currentErrorLog.Load()
			now := time.Now().UnixNano()
			last := el.last.Load()
			if (last != 0 && now-last < int64(errorLogInterval)) || !el.last.CompareAndSwap(last, now) {
				return
			}
			el.logger.Warn("exporting traces failed; spans are being dropped", "error", err)
		}))
	}
}
