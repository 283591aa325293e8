package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
)

// defaultSyncMetricsAddr is where the sync serves /metrics, /healthz and
// /readyz when --metrics-addr is empty. The flag's own default is empty
// because serve, which shares it, has its API port for them.
const defaultSyncMetricsAddr = ":9090"

// Sync runs the membership sync as a job of its own, for a SpiceDB that
// outlives it: a remote cluster, or embedded SpiceDB on its Postgres
// datastore. It serves /metrics, /healthz and /readyz on MetricsAddr
// (defaultSyncMetricsAddr when empty).
func Sync(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = defaultSyncMetricsAddr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	if cfg.SpiceDBEndpoint == "" && cfg.SpiceDBDatastoreURL == "" {
		return fmt.Errorf("config: %w: sync needs a persistent SpiceDB (--spicedb-endpoint or --spicedb-datastore-url); the memory datastore would vanish with this process (serve runs the sync itself for it)", authz.ErrInvalid)
	}
	logger.Info("starting sync", "config", cfg)
	sdb, err := openSpiceDB(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer sdb.stop(context.WithoutCancel(ctx)) //nolint:errcheck // shutting down
	reg := prometheus.NewRegistry()
	reg.MustRegister(sdb)
	syncer, err := newSyncer(cfg, true, logger, reg, sdb)
	if err != nil {
		return err
	}
	if cfg.Reconcile {
		return reconcileOnce(ctx, syncer, logger)
	}
	// An idle sync would not notice SpiceDB is gone until its next write;
	// it must not report ready meanwhile. Postgres ending the stream ends
	// the run, and readiness with it.
	health, err := newDependencyHealth(reg, logger, spiceDBProbe(sdb))
	if err != nil {
		return err
	}
	srv := newInternalServer(cfg.MetricsAddr, opsHandler(reg, health.readyWith(syncer.Ready)))
	// All run until ctx ends, and Sync returns once all have. The sync
	// goes on without its metrics server, as it always has.
	var group errgroup.Group
	group.Go(func() error {
		if err := serveHTTP(ctx, srv, nil, cfg.ShutdownTimeout, logger); err != nil {
			logger.Error("metrics server stopped", "error", err)
		}
		return nil
	})
	group.Go(func() error { runSync(ctx, syncer, logger); return nil })
	group.Go(func() error { health.Run(ctx); return nil })
	return group.Wait()
}

// newSyncer configures the sync; persistent selects a named slot resumed
// across runs (a SpiceDB that outlives the process) over a temporary one.
func newSyncer(cfg Config, persistent bool, logger *slog.Logger, reg prometheus.Registerer, target mirror.Target) (*mirror.Syncer, error) {
	return mirror.New(mirror.Config{
		DatabaseURL:       cfg.DatabaseURL,
		Persistent:        persistent,
		Slot:              cfg.SyncSlot,
		ReconcileInterval: cfg.ReconcileInterval,
		ReconcileOnResume: true,
		Logger:            logger,
		Registry:          reg,
	}, target)
}

func reconcileOnce(ctx context.Context, syncer *mirror.Syncer, logger *slog.Logger) error {
	res, err := syncer.ReconcileNow(ctx)
	if err != nil {
		return err
	}
	logger.Info("reconcile finished", "missing", res.Missing, "extra", res.Extra, "skipped", res.Skipped)
	fmt.Printf("reconcile: %d missing relationships written, %d extra deleted, %d rows skipped (see tenantgate.sync_dead_letters)\n",
		res.Missing, res.Extra, res.Skipped)
	return nil
}

// Backoff bounds between failed sync runs.
const (
	syncRetryMin = 500 * time.Millisecond
	syncRetryMax = 30 * time.Second
)

// runSync keeps the sync running until ctx ends. A failed run is retried
// with a fresh snapshot, which also removes whatever changed while it was
// down, so a retry can never leave stale access behind.
func runSync(ctx context.Context, syncer *mirror.Syncer, logger *slog.Logger) {
	// Jittered, so that replicas that failed together do not retry
	// together.
	retry := &backoff.ExponentialBackOff{InitialInterval: syncRetryMin, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: syncRetryMax}
	for ctx.Err() == nil {
		started := time.Now()
		err := syncer.Run(ctx)
		if err == nil {
			return
		}
		if time.Since(started) > syncRetryMax {
			retry.Reset()
		}
		wait := retry.NextBackOff()
		logger.Error("sync stopped; retrying with a fresh snapshot", "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// newInternalServer serves h on addr for operators and tools rather than
// for API clients: a client that trickles a request, or idles on a
// kept-alive connection, must not hold its connections for ever.
func newInternalServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// opsHandler serves the operational endpoints of a process without the
// gateway.
func opsHandler(reg *prometheus.Registry, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: not caught up with the stream, or SpiceDB does not answer", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
