package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
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
	cfg, err := cfg.withSecretFiles()
	if err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	if cfg.SpiceDBEndpoint == "" && cfg.SpiceDBDatastoreURL == "" {
		return fmt.Errorf("config: %w: sync needs a persistent SpiceDB (--spicedb-endpoint or --spicedb-datastore-url); the memory datastore would vanish with this process (serve runs the sync itself for it)", authz.ErrInvalid)
	}
	logger.Info("starting sync", "config", cfg)
	if cfg.Reconcile {
		sdb, syncer, err := openSync(ctx, newStartup(cfg.StartupTimeout, logger), cfg, logger, prometheus.NewRegistry())
		if err != nil {
			return err
		}
		defer sdb.stop(context.WithoutCancel(ctx)) //nolint:errcheck // shutting down
		return reconcileOnce(ctx, syncer, logger)
	}
	// The metrics server listens from the start, so that /healthz answers
	// while SpiceDB is still being waited for; /readyz fails until the
	// sync is running and caught up.
	reg := prometheus.NewRegistry()
	var ready atomic.Pointer[func() bool]
	srv := newInternalServer(cfg.MetricsAddr, opsHandler(reg, func() bool {
		r := ready.Load()
		return r != nil && (*r)()
	}))
	// All run until ctx ends, and Sync returns once all have. The sync
	// goes on without its metrics server, as it always has.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var group errgroup.Group
	group.Go(func() error { cfg.secrets.watch(ctx, logger); return nil })
	group.Go(func() error {
		if err := serveHTTP(ctx, srv, nil, cfg.ShutdownTimeout, logger); err != nil {
			logger.Error("metrics server stopped", "error", err)
		}
		return nil
	})
	err = func() error {
		start := newStartup(cfg.StartupTimeout, logger)
		if err := checkReplication(ctx, start, cfg, logger); err != nil {
			return err
		}
		sdb, syncer, err := openSync(ctx, start, cfg, logger, reg)
		if err != nil {
			return err
		}
		defer sdb.stop(context.WithoutCancel(ctx)) //nolint:errcheck // shutting down
		// An idle sync would not notice SpiceDB is gone until its next
		// write; it must not report ready meanwhile. Postgres ending the
		// stream ends the run, and readiness with it.
		health, err := newDependencyHealth(reg, logger, spiceDBProbe(sdb))
		if err != nil {
			return err
		}
		r := health.readyWith(syncer.Ready)
		ready.Store(&r)
		running, rctx := errgroup.WithContext(ctx)
		running.Go(func() error { return runSync(rctx, syncer, logger) })
		running.Go(func() error { health.Run(rctx); return nil })
		return running.Wait()
	}()
	if ctx.Err() != nil {
		err = nil // stopped while starting: not a failure
	}
	stop()
	return errors.Join(err, group.Wait())
}

// openSync reaches SpiceDB, retrying for up to --startup-timeout, and
// configures the sync on it.
func openSync(ctx context.Context, start *startup, cfg Config, logger *slog.Logger, reg *prometheus.Registry) (*spiceDB, *mirror.Syncer, error) {
	sdb, err := retryStartup(ctx, start, "spicedb", func(ctx context.Context) (*spiceDB, error) {
		return openSpiceDB(ctx, cfg, logger)
	})
	if err != nil {
		return nil, nil, err
	}
	reg.MustRegister(sdb)
	syncer, err := newSyncer(cfg, true, logger, reg, sdb)
	if err != nil {
		_ = sdb.stop(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return sdb, syncer, nil
}

// newSyncer configures the sync; persistent selects a named slot resumed
// across runs (a SpiceDB that outlives the process) over a temporary one.
func newSyncer(cfg Config, persistent bool, logger *slog.Logger, reg prometheus.Registerer, target mirror.Target) (*mirror.Syncer, error) {
	return mirror.New(mirror.Config{
		DatabaseURL:       cfg.DatabaseURL,
		Password:          cfg.databasePassword(),
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
// down, so a retry can never leave stale access behind. An error no retry
// cures (authz.ErrInvalid: a wrong wal_level, a missing privilege or
// publication) ends it, so that the process exits with the fix instead of
// retrying for ever.
func runSync(ctx context.Context, syncer *mirror.Syncer, logger *slog.Logger) error {
	// Jittered, so that replicas that failed together do not retry
	// together.
	retry := &backoff.ExponentialBackOff{InitialInterval: syncRetryMin, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: syncRetryMax}
	for ctx.Err() == nil {
		err := syncer.Run(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, authz.ErrInvalid) {
			return err
		}
		// Only a run that streamed caught up for a while starts the
		// backoff over: one that failed in its snapshot or reconcile, or
		// on the same change in its backlog, however long that took,
		// keeps backing off.
		if syncer.LastRunReadyFor() > syncRetryMax {
			retry.Reset()
		}
		wait := retry.NextBackOff()
		logger.Error("sync stopped; retrying", "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
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
