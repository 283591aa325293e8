package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tenantgate/tenantgate/internal/telemetry"
	"github.com/tenantgate/tenantgate/internal/telemetry/telemetrytest"
)

// clearEnvironment unsets the variables that turn tracing on or name the
// service, so that the runner's own do not change what a test sees.
func clearEnvironment(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

// TestStartExportsWhereConfigured: a span ends up at the receiver that the
// flag or a standard variable names, under the service name that
// OTEL_SERVICE_NAME gives or else tenantgate's; without any, nothing is
// traced at all.
func TestStartExportsWhereConfigured(t *testing.T) {
	tests := []struct {
		name        string
		flag        bool              // the receiver is Config.Endpoint
		env         map[string]string // with "{receiver}" for its URL
		wantService string            // empty: tracing is off
	}{
		{name: "flag", flag: true, wantService: "tenantgate-test"},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{receiver}"}, wantService: "tenantgate-test"},
		{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{receiver}/v1/traces"}, wantService: "tenantgate-test"},
		{name: "OTEL_SERVICE_NAME wins", flag: true, env: map[string]string{"OTEL_SERVICE_NAME": "gateway-eu"}, wantService: "gateway-eu"},
		{name: "nothing configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnvironment(t)
			rcv := telemetrytest.NewReceiver(t)
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "{receiver}", rcv.URL()))
			}
			cfg := telemetry.Config{ServiceName: "tenantgate-test"}
			if tt.flag {
				cfg.Endpoint = rcv.URL()
			}
			tracing, err := telemetry.Start(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			tp := tracing.TracerProvider()
			if tt.wantService == "" {
				if tp != nil {
					t.Fatal("tracing is on without an endpoint")
				}
				if err := tracing.Shutdown(t.Context()); err != nil {
					t.Errorf("Shutdown of tracing that is off: %v", err)
				}
				return
			}
			if tp == nil {
				t.Fatal("tracing is off")
			}
			_, span := tp.Tracer("test").Start(t.Context(), "work")
			span.End()
			// Shutdown exports what is queued: no wait for the batch.
			if err := tracing.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			spans := rcv.Spans()
			if len(spans) != 1 || spans[0].Name != "work" || spans[0].Service != tt.wantService {
				t.Fatalf("received %v, want the span work from %s", spans, tt.wantService)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		endpoint string
		ok       bool
	}{
		{"", true},
		{"http://collector:4318", true},
		{"https://otel.example/base", true},
		{"collector:4318", false},
		{"grpc://collector:4317", false},
		{"http://", false},
		{"http://collector:4318/?x=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			err := telemetry.Config{Endpoint: tt.endpoint}.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
			tracing, err := telemetry.Start(t.Context(), telemetry.Config{Endpoint: tt.endpoint})
			if (err == nil) != tt.ok {
				t.Errorf("Start() = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				// Nothing queued: stopping exports nothing.
				if err := tracing.Shutdown(t.Context()); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestShutdownIsBoundedByItsContext: a receiver that never answers costs a
// stopping process its shutdown timeout, not more.
func TestShutdownIsBoundedByItsContext(t *testing.T) {
	clearEnvironment(t)
	// A listener that never accepts: the kernel completes the connection,
	// and the export waits for an answer that never comes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	tracing, err := telemetry.Start(t.Context(), telemetry.Config{Endpoint: "http://" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tracing.TracerProvider().Tracer("test").Start(t.Context(), "work")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = tracing.Shutdown(ctx)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Shutdown took %v with a 200ms deadline", took)
	}
	if err == nil {
		t.Error("Shutdown reported success though nothing was exported")
	}
}

// TestLoggerAddsRequestAndTrace: every line logged with a request's context
// carries its request ID, and the trace and span IDs while a span records;
// lines without them carry neither; wrapping twice adds nothing twice.
func TestLoggerAddsRequestAndTrace(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	recording, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	sampledOut, unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("test").Start(context.Background(), "request")
	defer unsampled.End()
	traceID, spanID := span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String()

	tests := []struct {
		name string
		ctx  context.Context
		want map[string]string // "" : the key must be absent
	}{
		{"plain", context.Background(), map[string]string{"request_id": "", "trace_id": "", "span_id": ""}},
		{"request", telemetry.WithRequestID(context.Background(), "r-1"), map[string]string{"request_id": "r-1", "trace_id": ""}},
		{"recording span", telemetry.WithRequestID(recording, "r-2"), map[string]string{"request_id": "r-2", "trace_id": traceID, "span_id": spanID}},
		{"span not sampled", sampledOut, map[string]string{"trace_id": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := telemetry.Logger(telemetry.Logger(slog.New(slog.NewJSONHandler(&buf, nil)))).With("part", "test")
			logger.InfoContext(tt.ctx, "hello")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			if strings.Count(buf.String(), `"request_id"`) > 1 {
				t.Errorf("request_id twice: %s", buf.String())
			}
			if line["part"] != "test" {
				t.Errorf("With lost its attribute: %s", buf.String())
			}
			for k, want := range tt.want {
				got, has := line[k]
				switch {
				case want == "" && has:
					t.Errorf("%s = %v, want none", k, got)
				case want != "" && fmt.Sprint(got) != want:
					t.Errorf("%s = %v, want %s", k, got, want)
				}
			}
		})
	}
	if telemetry.RequestID(context.Background()) != "" {
		t.Error("a request ID from nowhere")
	}
}
