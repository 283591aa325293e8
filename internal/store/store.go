// Package store is tenantgate's access to the application's PostgreSQL: a
// pgx pool, the embedded migrations that create the data contract of
// docs/design.md, and the queries the gateway and the demo run on companies and
// memberships. Every error it returns that has an authz kind (conflict,
// invalid, not found, unavailable) wraps it, so callers never look at
// SQLSTATEs.
package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// connectTimeout bounds one connection attempt when the URL sets no
// connect_timeout: without it a blackholed server stalls until the caller's
// deadline, and callers without one forever.
const connectTimeout = 5 * time.Second

// Store is a pool of connections to the application's database.
type Store struct {
	pool *pgxpool.Pool
	// logger receives the audit trail of management decisions.
	logger *slog.Logger
	// outsiderRefusals counts management requests refused to callers
	// without a role on the company, which no audit trail records.
	outsiderRefusals prometheus.Counter
	// consent is whether memberships granted to others start pending
	// (authz.Invited); set once, before the store serves requests.
	consent authz.Consent
	// quotas bound creations and fan-out (authz.Quotas); set once, before
	// the store serves requests.
	quotas authz.Quotas
	// queries times and counts every statement of the pool.
	queries *queryMetrics
}

// Option adjusts Open.
type Option func(*options)

type options struct {
	tracer   trace.TracerProvider
	password func() string
}

// WithTracerProvider makes a span with tp of every statement run inside a
// trace; nil traces nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp }
}

// WithPassword makes every new connection log in with password() instead
// of the URL's password, so that a rotated password is used without a
// restart; connections already open keep theirs.
func WithPassword(password func() string) Option {
	return func(o *options) { o.password = password }
}

// SetQuotas bounds what the management API lets one user create. Call it
// before the store serves requests.
func (s *Store) SetQuotas(q authz.Quotas) { s.quotas = q }

// RequireConsent makes memberships granted through SetMember to another
// user start pending until that user accepts them (AcceptMembership). Call
// it before the store serves requests.
func (s *Store) RequireConsent() { s.consent = authz.ConsentRequired }

var _ prometheus.Collector = (*Store)(nil)

func newOutsiderRefusals() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tenantgate_management_outsider_refusals_total",
		Help: "Management requests refused to callers who hold no role on the company or above it; they are logged but kept out of the company's audit trail. A high rate means someone probes or floods companies that are not theirs.",
	})
}

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	s.outsiderRefusals.Describe(ch)
	s.queries.describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	s.outsiderRefusals.Collect(ch)
	s.queries.collect(ch)
}

// Open connects to databaseURL and pings it, so a wrong URL or a server that
// is down fails here rather than on the first request. Pool sizes and
// lifetimes come from the URL (pool_max_conns and friends) with pgx's
// defaults; a nil logger discards.
func Open(ctx context.Context, databaseURL string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if cfg.PingTimeout == 0 {
		// The pool pings a connection that sat idle before handing it out; a
		// dead server must not hold that ping for the whole request deadline.
		cfg.PingTimeout = connectTimeout
	}
	queries := newQueryMetrics()
	cfg.ConnConfig.Tracer = queries.poolTracer(o.tracer)
	if o.password != nil {
		cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
			cc.Password = o.password()
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", translate(err))
	}
	s := &Store{pool: pool, logger: logger, outsiderRefusals: newOutsiderRefusals(), queries: queries}
	// ctx is the process's: a server that takes the connection but never
	// answers must fail the start, not hang it.
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", refusedForGood(err))
	}
	logger.InfoContext(ctx, "connected to postgres",
		slog.String("host", cfg.ConnConfig.Host),
		slog.Int("port", int(cfg.ConnConfig.Port)),
		slog.String("database", cfg.ConnConfig.Database),
		slog.Int("max_conns", int(cfg.MaxConns)))
	return s, nil
}

// Close waits for borrowed connections to come back and closes them all.
func (s *Store) Close() {
	s.pool.Close()
}

// Pool is the raw pool, shared with the reads of the sync's bookkeeping
// (mirror.AppliedReader) that a remote gateway makes, and for tests; the
// sync itself opens its own connections.
func (s *Store) Pool() *pgxpool.Pool {
	return s.pool
}

// Ping checks that the database answers; readiness probes use it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", translate(err))
	}
	return nil
}
