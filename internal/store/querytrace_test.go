package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// timedStatements is how many calls tenantgate_postgres_query_duration_seconds has timed under operation.
func timedStatements(t *testing.T, reg prometheus.Gatherer, operation string) uint64 {
	t.Helper()
	return uint64(testutil.MetricValue(t, reg, "tenantgate_postgres_query_duration_seconds", "operation", operation))
}

// TestStatementsAreTimedAndCounted: every statement and batch of the pool
// is timed under its operation, one of a fixed set whatever the SQL; a
// failed one is counted; one its caller cancelled is neither.
func TestStatementsAreTimedAndCounted(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	ctx := t.Context()
	exec := func(sql string) error {
		_, err := s.Pool().Exec(ctx, sql)
		return err
	}
	for _, sql := range []string{
		"  SELECT 1",
		"select 2",
		"insert into companies (id, name) values ('acme', 'ACME')",
		"update companies set name = 'ACME Corp' where id = 'acme'",
		"delete from companies where id = 'acme'",
		"with x as (select 1) select * from x",
		"vacuum companies",
	} {
		if err := exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, _, err := s.SampleChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec("select 1/0"); err == nil {
		t.Fatal("a division by zero succeeded")
	}
	before := timedStatements(t, reg, "select")
	cancelSleeper(t, s, dbURL)
	if got := timedStatements(t, reg, "select"); got != before {
		t.Errorf("the cancelled statement was timed")
	}

	tests := []struct {
		operation  string
		timed      uint64
		failed     float64
		statements string
	}{
		{"select", 3, 1, "two selects and the division by zero"},
		{"insert", 1, 0, "the insert"},
		{"update", 1, 0, "the update"},
		{"delete", 1, 0, "the delete"},
		{"batch", 1, 0, "SampleChanges"},
		{"other", 2, 0, "with and vacuum"},
	}
	for _, tt := range tests {
		t.Run(tt.operation, func(t *testing.T) {
			if got := timedStatements(t, reg, tt.operation); got != tt.timed {
				t.Errorf("%d statements timed, want %d: %s", got, tt.timed, tt.statements)
			}
			if got := testutil.MetricValue(t, reg, "tenantgate_postgres_query_errors_total", "operation", tt.operation); got != tt.failed {
				t.Errorf("%v statements counted as failed, want %v", got, tt.failed)
			}
		})
	}
}

// cancelSleeper runs a statement on s's pool that sleeps, and cancels its
// context once the server runs it, as a connection of its own to dbURL
// sees.
func cancelSleeper(t *testing.T, s *store.Store, dbURL string) {
	t.Helper()
	watcher, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.WithoutCancel(t.Context()))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Pool().Exec(ctx, "select pg_sleep(60) /* cancelSleeper */")
		done <- err
	}()
	testutil.Eventually(t, 30*time.Second, func() error {
		var running bool
		err := watcher.QueryRow(t.Context(), `select exists (select from pg_stat_activity
			where query like 'select pg_sleep(60) /* cancelSleeper */%' and state = 'active')`).Scan(&running)
		if err == nil && !running {
			err = errors.New("the sleeper is not running yet")
		}
		return err
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled sleeper succeeded")
	}
}

// TestStatementsInsideATraceAreTraced: a statement run inside a trace is a
// span of that trace, named by its operation, not its text; one outside
// any (the background polls) starts no trace.
func TestStatementsInsideATraceAreTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s, err := store.Open(t.Context(), testutil.NewTestDatabase(t), nil, store.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.CompaniesByIDs(t.Context(), []string{"acme"}); err != nil {
		t.Fatal(err)
	}
	if ended := rec.Ended(); len(ended) != 0 {
		t.Fatalf("statements outside a trace made %d spans, the first %q", len(ended), ended[0].Name())
	}

	ctx, parent := tp.Tracer("test").Start(t.Context(), "request")
	if _, err := s.CompaniesByIDs(ctx, []string{"acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SampleChanges(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()
	names := map[string]bool{}
	for _, span := range rec.Ended() {
		names[span.Name()] = true
		if span.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("span %q is in trace %s, want the request's %s", span.Name(), span.SpanContext().TraceID(), parent.SpanContext().TraceID())
		}
	}
	// The select alone and in the batch, the batch, and the waits for a
	// connection of the pool.
	for _, want := range []string{"query SELECT", "batch start", "pool.acquire"} {
		if !names[want] {
			t.Errorf("no span %q among %v", want, names)
		}
	}
}
