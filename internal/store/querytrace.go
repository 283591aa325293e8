package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// queryMetrics times every statement and batch the pool runs and counts
// the failed ones, by operation: the statement's first keyword when it is
// select, insert, update or delete, "batch" for a batch, "other" for the
// rest (transaction control, with). A fixed set: SQL text would make a
// series per statement.
type queryMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

var (
	_ pgx.QueryTracer = (*queryMetrics)(nil)
	_ pgx.BatchTracer = (*queryMetrics)(nil)
)

func newQueryMetrics() *queryMetrics {
	return &queryMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tenantgate_postgres_query_duration_seconds",
			Help: "Time the application database took to answer a statement of the gateway's pool (select, insert, update, delete, batch, other). Waiting for a free connection of the pool is not included. High values mean Postgres is slow (load, locks held by other writers, a plan gone wrong): lists, management requests and the staleness bound wait for it.",
			// A lookup by key takes well under a millisecond; the top
			// buckets (8 s and more) catch a database that hangs.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_postgres_query_errors_total",
			Help: "Statements of the gateway's pool that failed, by operation (statements the caller itself cancelled are not counted). A rising rate means the application database is down, refuses connections or times out; a few come from conflicting writes (a company ID already taken), answered 409.",
		}, []string{"operation"}),
	}
}

func (m *queryMetrics) describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	m.errors.Describe(ch)
}

func (m *queryMetrics) collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.errors.Collect(ch)
}

type queryStartKey struct{}

// queryStart is what a statement's end needs from its start.
type queryStart struct {
	at        time.Time
	operation string
}

// TraceQueryStart implements pgx.QueryTracer.
func (m *queryMetrics) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), operation: operationOf(data.SQL)})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (m *queryMetrics) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	m.observe(ctx, data.Err)
}

// TraceBatchStart implements pgx.BatchTracer.
func (m *queryMetrics) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), operation: "batch"})
}

// TraceBatchQuery implements pgx.BatchTracer; the batch is timed whole.
func (m *queryMetrics) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (m *queryMetrics) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	m.observe(ctx, data.Err)
}

func (m *queryMetrics) observe(ctx context.Context, err error) {
	start, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	if err != nil {
		m.errors.WithLabelValues(start.operation).Inc()
	}
	m.duration.WithLabelValues(start.operation).Observe(time.Since(start.at).Seconds())
}

// operationOf is the operation label of a statement.
func operationOf(sql string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	switch op := strings.ToLower(strings.TrimSpace(word)); op {
	case "select", "insert", "update", "delete":
		return op
	}
	return "other"
}

// poolTracer is the pool's pgx tracer: the metrics always, and spans with
// tp when it is set. otelpgx makes spans only of statements run inside a
// recording span (a request's): the pool's background polls (the
// staleness bound, the sync's checkpoint), several a second, start no
// traces of their own.
func (m *queryMetrics) poolTracer(tp trace.TracerProvider) pgx.QueryTracer {
	if tp == nil {
		return m
	}
	return multitracer.New(m, otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithTrimSQLInSpanName()))
}
