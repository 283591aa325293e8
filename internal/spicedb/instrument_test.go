package spicedb_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// timedCalls is how many calls tenantgate_spicedb_request_duration_seconds has timed under method.
func timedCalls(t *testing.T, reg prometheus.Gatherer, method string) uint64 {
	t.Helper()
	return uint64(testutil.MetricValue(t, reg, "tenantgate_spicedb_request_duration_seconds", "method", method))
}

// TestCallsAreTimedAndCounted: every call to SpiceDB, unary or streamed,
// is timed by its method, a failed one is counted with its status code,
// and one the caller cancelled is neither.
func TestCallsAreTimedAndCounted(t *testing.T) {
	e := spicedbtest.NewEmbedded(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	token := write(t, e, member("acme", authz.RoleViewer, "alice"))
	cons := authz.Consistency{AtLeastAsFresh: token}
	ctx := t.Context()

	if _, _, err := e.Check(ctx, authz.CheckRequest{User: "alice", Permission: authz.PermRead, Company: "acme"}, cons); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.LookupCompanies(ctx, "alice", authz.PermRead, cons, 10, ""); err != nil {
		t.Fatal(err)
	}
	// A permission the schema lacks: SpiceDB refuses it.
	if _, _, err := e.Check(ctx, authz.CheckRequest{User: "alice", Permission: "fly", Company: "acme"}, cons); err == nil {
		t.Fatal("a check of an unknown permission succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := e.Check(cancelled, authz.CheckRequest{User: "alice", Permission: authz.PermRead, Company: "acme"}, cons); err == nil {
		t.Fatal("a cancelled check succeeded")
	}

	tests := []struct {
		method string
		want   uint64
	}{
		{"CheckPermission", 2},    // the answered and the refused check
		{"LookupResources", 1},    // a stream, timed to its end
		{"WriteRelationships", 1}, // the write above
		{"WriteSchema", 1},        // by spicedbtest
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			if got := timedCalls(t, reg, tt.method); got != tt.want {
				t.Errorf("%d calls timed, want %d", got, tt.want)
			}
		})
	}
	if got := testutil.MetricValue(t, reg, "tenantgate_spicedb_errors_total", "method", "CheckPermission"); got != 1 {
		t.Errorf("%v failed checks counted, want 1 (the refused one; the cancelled one is the caller's doing)", got)
	}
	if got := testutil.MetricValue(t, reg, "tenantgate_spicedb_errors_total", "method", "CheckPermission", "code", "OK"); got != 0 {
		t.Errorf("a failure counted with code OK")
	}
}

// TestCallsInsideATraceAreTraced: a call made inside a trace is a span of
// that trace, a child of the caller's span; a call outside any (the
// background's) starts no trace of its own.
func TestCallsInsideATraceAreTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := spicedbtest.NewEmbedded(t, spicedb.WithTracing(tp, propagation.TraceContext{}))
	check := func(ctx context.Context) {
		t.Helper()
		if _, _, err := e.Check(ctx, authz.CheckRequest{User: "alice", Permission: authz.PermRead, Company: "acme"}, authz.Consistency{}); err != nil {
			t.Fatal(err)
		}
	}
	check(t.Context())
	if ended := rec.Ended(); len(ended) != 0 {
		t.Fatalf("calls outside a trace made %d spans, the first %q", len(ended), ended[0].Name())
	}

	ctx, parent := tp.Tracer("test").Start(t.Context(), "request")
	check(ctx)
	parent.End()
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() != "authzed.api.v1.PermissionsService/CheckPermission" {
			continue
		}
		found = true
		if s.SpanContext().TraceID() != parent.SpanContext().TraceID() || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("the call's span is trace %s parent %s, want trace %s parent %s",
				s.SpanContext().TraceID(), s.Parent().SpanID(), parent.SpanContext().TraceID(), parent.SpanContext().SpanID())
		}
	}
	if !found {
		t.Errorf("no span of the check among %d", len(rec.Ended()))
	}
}
