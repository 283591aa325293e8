package gateway_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// tracedGateway is a gateway over fresh fakes that traces with tp (nil:
// not at all) and logs JSON at debug level to logs.
func tracedGateway(t *testing.T, cfg gateway.Config, tp trace.TracerProvider, logs *testutil.SyncBuffer) *gateway.Gateway {
	t.Helper()
	gw, err := gateway.New(cfg, gateway.Deps{
		Authn:          &fakeAuthn{},
		Authz:          &fakeAuthz{allow: map[authz.CheckRequest]bool{{User: "alice", Permission: authz.PermRead, Company: "acme"}: true}, pages: map[string]lookupPage{}},
		Companies:      &fakeCompanies{byID: map[string]authz.Company{}},
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:       prometheus.NewRegistry(),
		TracerProvider: tp,
		Propagator:     propagation.TraceContext{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// TestRequestsAreTracedByRoute: an API request is a server span named
// after its route, continuing the caller's trace from its traceparent, and
// its log lines carry the trace ID and the request ID it was answered
// with; probes and scrapes make no spans.
func TestRequestsAreTracedByRoute(t *testing.T) {
	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
	)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	logs := &testutil.SyncBuffer{}
	gw := tracedGateway(t, gateway.Config{}, tp, logs)

	tests := []struct {
		name, method, target, body string
		wantSpan, wantRoute        string // empty: no span
	}{
		{"a route", "POST", "/v1/check", `{"permission":"read","company":"acme"}`, "POST /v1/check", "/v1/check"},
		{"a route with a parameter", "GET", "/v1/companies/acme/permissions", "", "GET /v1/companies/{id}/permissions", "/v1/companies/{id}/permissions"},
		{"no route", "GET", "/v1/nowhere", "", "GET", ""},
		{"a probe", "GET", "/readyz", "", "", ""},
		{"a scrape", "GET", "/metrics", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.Ended())
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			r.Header.Set("Authorization", "Bearer "+aliceToken)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
			w := httptest.NewRecorder()
			gw.Handler().ServeHTTP(w, r)
			ended := rec.Ended()[before:]
			if tt.wantSpan == "" {
				if len(ended) != 0 {
					t.Fatalf("%d spans, the first %q; want none", len(ended), ended[0].Name())
				}
				return
			}
			if len(ended) != 1 {
				t.Fatalf("%d spans, want 1", len(ended))
			}
			span := ended[0]
			if span.Name() != tt.wantSpan {
				t.Errorf("span %q, want %q", span.Name(), tt.wantSpan)
			}
			if span.SpanContext().TraceID().String() != callerTrace || span.Parent().SpanID().String() != callerSpan {
				t.Errorf("span in trace %s under %s, want the caller's %s under %s",
					span.SpanContext().TraceID(), span.Parent().SpanID(), callerTrace, callerSpan)
			}
			route := ""
			for _, a := range span.Attributes() {
				if a.Key == "http.route" {
					route = a.Value.AsString()
				}
			}
			if route != tt.wantRoute {
				t.Errorf("http.route %q, want %q", route, tt.wantRoute)
			}
			id := w.Header().Get("X-Request-Id")
			if id == "" {
				t.Fatal("no X-Request-Id")
			}
			var found bool
			for line := range strings.Lines(logs.String()) {
				var l map[string]any
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if l["request_id"] != id {
					continue
				}
				found = true
				if l["trace_id"] != callerTrace || l["span_id"] != span.SpanContext().SpanID().String() {
					t.Errorf("log line of the request without its trace: %s", line)
				}
			}
			if !found {
				t.Errorf("no log line carries request_id %s:\n%s", id, logs)
			}
		})
	}
}

// TestMetricsApart: with MetricsApart, /metrics is served by OpsHandler
// only, next to /healthz and /readyz; without it, by Handler as ever.
func TestMetricsApart(t *testing.T) {
	tests := []struct {
		apart      bool
		wantPublic int // the status of /metrics on Handler
	}{
		{apart: false, wantPublic: http.StatusOK},
		{apart: true, wantPublic: http.StatusNotFound},
	}
	for _, tt := range tests {
		name := "on the API"
		if tt.apart {
			name = "apart"
		}
		t.Run(name, func(t *testing.T) {
			gw := tracedGateway(t, gateway.Config{MetricsApart: tt.apart}, nil, &testutil.SyncBuffer{})
			get := func(h http.Handler, path string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				return w
			}
			if got := get(gw.Handler(), "/metrics").Code; got != tt.wantPublic {
				t.Errorf("API /metrics: %d, want %d", got, tt.wantPublic)
			}
			scrape := get(gw.OpsHandler(), "/metrics")
			if scrape.Code != http.StatusOK || !strings.Contains(scrape.Body.String(), "tenantgate_http_requests_total") {
				t.Errorf("ops /metrics: %d %.200s", scrape.Code, scrape.Body)
			}
			for _, path := range []string{"/healthz", "/readyz"} {
				for where, h := range map[string]http.Handler{"API": gw.Handler(), "ops": gw.OpsHandler()} {
					if got := get(h, path).Code; got != http.StatusOK {
						t.Errorf("%s %s: %d, want 200", where, path, got)
					}
				}
			}
		})
	}
}
