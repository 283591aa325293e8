package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config selects where spans go.
type Config struct {
	// Endpoint is the base URL of an OTLP/HTTP receiver
	// (http://collector:4318); spans are sent to its /v1/traces. Empty
	// falls back to the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
	// OTEL_EXPORTER_OTLP_ENDPOINT; with none of them set, tracing is off.
	Endpoint string
	// ServiceName names the process in traces unless OTEL_SERVICE_NAME
	// (or service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
	ServiceName string
}

// The standard variables that turn tracing on without Config.Endpoint.
const (
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// tracesPath is where OTLP/HTTP receivers take spans, below their base URL.
const tracesPath = "v1/traces"

// Validate checks the endpoint, so that a typo fails at start rather than
// as exports that never arrive.
func (c Config) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want the http:// or https:// base URL of an OTLP/HTTP receiver")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want a URL without query or fragment")
	}
	return nil
}

// Enabled reports whether Start exports spans: an endpoint is configured,
// by Config or by the standard environment variables.
func (c Config) Enabled() bool {
	return c.Endpoint != "" || os.Getenv(envTracesEndpoint) != "" || os.Getenv(envEndpoint) != ""
}

// Tracing is the process's tracer provider and propagator. The zero value
// (and a nil *Tracing) traces nothing.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// Start builds the tracer provider Config asks for: a batching OTLP/HTTP
// exporter when Enabled, nothing otherwise. The SDK reads the other
// standard variables itself: OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _CERTIFICATE, OTEL_TRACES_SAMPLER (default parentbased_always_on) and
// OTEL_BSP_* among them. Shutdown must be called to flush what is queued.
func Start(ctx context.Context, cfg Config) (*Tracing, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tracing: endpoint %q: %w", cfg.Endpoint, err)
	}
	if !cfg.Enabled() {
		return &Tracing{}, nil
	}
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		u, _ := url.Parse(cfg.Endpoint) // Validate parsed it
		opts = append(opts, otlptracehttp.WithEndpointURL(u.JoinPath(tracesPath).String()))
	}
	// New dials nothing: a receiver that is down costs dropped spans and
	// a logged export error, never a failed start.
	exporter, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	// Later detectors win: the environment overrides the built-in name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return &Tracing{provider: sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
	)}, nil
}

// TracerProvider is what instrumented parts make spans with; nil when
// tracing is off, so that they skip instrumenting altogether.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider
}

// Propagator reads and writes W3C trace context (traceparent): the
// gateway continues a caller's trace, and SpiceDB continues the gateway's.
// Baggage is not propagated: a caller's baggage has no business in SpiceDB.
func Propagator() propagation.TextMapPropagator {
	return propagation.TraceContext{}
}

// Shutdown exports the spans still queued, bounded by ctx, and stops the
// provider.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
