package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/index"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/routes"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/telemetry"
)

// The store's change clock is what the staleness bound samples; SpiceDB
// feeds the permission index, answers what it cannot, and orders revisions.
var (
	_ mirror.ChangeSampler  = (*store.Store)(nil)
	_ index.Source          = (*spicedb.Client)(nil)
	_ index.Fallback        = (*spicedb.Client)(nil)
	_ index.Freshness       = (*spicedb.Client)(nil)
	_ gateway.Authorizer    = (*index.Authorizer)(nil)
	_ gateway.Explainer     = (*spicedb.Client)(nil)
	_ gateway.AllCompanies  = (*store.Store)(nil)
	_ gateway.ForwardRoutes = (*routes.Table)(nil)
)

// Serve runs the REST gateway until ctx ends. With embedded SpiceDB it also
// runs the sync in-process and is ready once the initial snapshot is in.
//
// It listens as soon as its configuration is checked, and then retries
// what it needs (the key set, Postgres, SpiceDB) for up to
// --startup-timeout: meanwhile /healthz answers 200 and /readyz and the API
// 503, so an orchestrator neither restarts it nor routes traffic to it.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	// Every line logged with a request's context carries its request ID,
	// and its trace ID when traced.
	logger = telemetry.Logger(logger)
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg, err := cfg.withSecretFiles()
	if err != nil {
		return err
	}
	for _, check := range []func() error{cfg.requireDatabase, cfg.requireIdentity} {
		if err := check(); err != nil {
			return err
		}
	}
	logger.Info("starting gateway", "config", cfg)
	// Files and flags first: a mistake in them fails at once, before any
	// backend is reached. Validate has parsed the platform roles already.
	platformRoles, err := authz.ParsePlatformRoles(cfg.PlatformRoles)
	if err != nil {
		return err
	}
	gwCfg := gateway.Config{
		ServiceToken: cfg.ServiceToken, CurrentServiceToken: cfg.currentServiceToken(), ConsistencyWait: cfg.ConsistencyWait,
		PlatformRoles: platformRoles, ExternalURL: cfg.ExternalURL,
		RateLimitUser: cfg.RateLimitUser, RateLimitService: cfg.RateLimitService, RateLimitAddress: cfg.RateLimitAddress,
		MaxInFlight: cfg.MaxInFlight, MetricsApart: cfg.MetricsAddr != "",
	}
	if err := gwCfg.Validate(); err != nil {
		return fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	var forward gateway.ForwardRoutes
	if cfg.Routes != "" {
		table, err := routes.Load(cfg.Routes)
		if err != nil {
			return err
		}
		forward = table
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	api, ops := &gateway.Starting{}, &gateway.Starting{}
	// The servers and every loop share one lifetime: when ctx ends or a
	// server fails, all of them stop, and Serve returns (closing what they
	// used) only once all have.
	group, gctx := errgroup.WithContext(ctx)
	// The gateway's loops can end by themselves (the sync meets what no
	// retry cures): the servers then stop first, so that nothing hands a
	// request to what runGateway closes.
	serversCtx, stopServers := context.WithCancel(gctx)
	defer stopServers()
	var serving sync.WaitGroup
	serve := func(srv *http.Server, ln net.Listener) {
		serving.Add(1)
		group.Go(func() error {
			defer serving.Done()
			return serveHTTP(serversCtx, srv, ln, cfg.ShutdownTimeout, logger)
		})
	}
	serve(gateway.NewServer(gwCfg, cfg.HTTPAddr, api, logger), ln)
	if cfg.MetricsAddr != "" {
		serve(newInternalServer(cfg.MetricsAddr, ops), nil)
	}
	group.Go(func() error { cfg.secrets.watch(gctx, logger); return nil })
	group.Go(func() error {
		err := runGateway(gctx, cfg, gwCfg, forward, logger, api, ops, func() {
			stopServers()
			serving.Wait()
		})
		if gctx.Err() != nil {
			// Stopped while starting: not a failure of its own (a server
			// that failed is the group's error).
			return nil
		}
		return err
	})
	return group.Wait()
}

// runGateway opens what the gateway needs, retrying for up to
// --startup-timeout, swaps it into api and ops, and runs its loops until
// ctx ends or one fails. It closes what it opened only after
// stopServing returns: once the servers have drained and none can hand a
// request to it any more.
func runGateway(ctx context.Context, cfg Config, gwCfg gateway.Config, forward gateway.ForwardRoutes, logger *slog.Logger,
	api, ops *gateway.Starting, stopServing func(),
) error {
	start := newStartup(cfg.StartupTimeout, logger)
	// The key set first: it is the cheapest to reach and the likeliest to
	// be misconfigured.
	verifier, err := retryStartup(ctx, start, "identity", func(ctx context.Context) (*identity.Verifier, error) {
		return identity.New(ctx, cfg.identityConfig(logger))
	})
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	consoleH, err := consoleHandler(ctx, start, cfg, logger)
	if err != nil {
		return err
	}
	tracing, stopTracing, err := startTracing(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stopTracing()
	st, err := retryStartup(ctx, start, "postgres", func(ctx context.Context) (*store.Store, error) {
		return store.Open(ctx, cfg.DatabaseURL, logger, store.WithTracerProvider(tracing.TracerProvider()),
			store.WithPassword(cfg.databasePassword()))
	})
	if err != nil {
		return err
	}
	defer st.Close()
	// With embedded SpiceDB this process runs the sync; a gateway on a
	// remote SpiceDB needs nothing of replication.
	if cfg.SpiceDBEndpoint == "" {
		if err := checkReplication(ctx, start, cfg, logger); err != nil {
			return err
		}
	}
	if authz.Consent(cfg.MembershipConsent) == authz.ConsentRequired {
		st.RequireConsent()
	}
	st.SetQuotas(authz.Quotas{MaxOwned: cfg.MaxCompaniesPerUser, MaxChildren: cfg.MaxChildren, MaxTreeSize: cfg.MaxTreeSize})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), st)

	// The floor: reads without a consistency token of their own are made at
	// least as fresh as the last change the sync applied. A SpiceDB that
	// outlives this process is fed by whichever sync holds the slot (the
	// one in this process or another replica's, with embedded SpiceDB on
	// a shared datastore; a `tenantgate sync`, with a remote one), so the
	// gateway follows the sync's checkpoints in Postgres; only the memory
	// datastore is fed by the sync in this process alone.
	var syncer *mirror.Syncer
	applied := mirror.NewAppliedReader(st.Pool(), cfg.SyncSlot)
	follower := mirror.NewFollower(applied)
	floor, floorLSN := follower.Floor, follower.FloorLSN
	if !cfg.persistentSpiceDB() {
		floor = func() string { return syncer.LatestToken() }
		floorLSN = func() authz.LSN { return syncer.Applied() }
	}
	// Scraped only once the server listens, after syncer is set.
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tenantgate_gateway_floor_lsn",
		Help: "WAL position of the application database that every read of this gateway reflects at least; far behind pg_current_wal_lsn() means the sync, or this gateway's view of it, lags, and reads without a consistency token may be that old.",
	}, func() float64 { return float64(floorLSN()) }))
	sdb, err := retryStartup(ctx, start, "spicedb", func(ctx context.Context) (*spiceDB, error) {
		return openSpiceDB(ctx, cfg, logger, spicedb.WithFloor(floor),
			spicedb.WithTracing(tracing.TracerProvider(), telemetry.Propagator()))
	})
	if err != nil {
		return err
	}
	defer sdb.stop(context.WithoutCancel(ctx)) //nolint:errcheck // shutting down
	reg.MustRegister(sdb)

	var ready func() bool
	// Reads carrying a write's WAL position wait for the sync to apply it.
	var waits lsnWaiter
	// coverage tells the staleness bound how far the sync has applied.
	var coverage mirror.ReadCoverage
	// loops run beside the server until it stops; they start once nothing
	// can fail any more, so that an error return leaves none behind.
	var loops []func(context.Context)
	// syncLoop is the in-process sync of an embedded SpiceDB, which ends
	// the gateway when it meets what no retry cures.
	var syncLoop func(context.Context) error
	if sdb.embedded {
		// The memory datastore starts empty, so it takes a fresh snapshot
		// on a temporary slot; a Postgres datastore keeps a persistent one,
		// and replicas that share it take turns as its active sync while
		// all of them serve.
		syncer, err = newSyncer(cfg, cfg.persistentSpiceDB(), logger, reg, sdb)
		if err != nil {
			return err
		}
		syncLoop = func(ctx context.Context) error { return runSync(ctx, syncer, logger) }
	}
	if !cfg.persistentSpiceDB() {
		ready = syncer.Ready
		waits = syncer
		coverage = func(context.Context) (func(authz.LSN) bool, error) {
			return syncer.Covers, nil
		}
	} else {
		ready = follower.Ready
		slotWaits, err := mirror.NewSlotWaits(applied, mirror.WaitPollInterval, reg)
		if err != nil {
			return err
		}
		waits = slotWaits
		coverage = func(ctx context.Context) (func(authz.LSN) bool, error) {
			a, err := applied.Applied(ctx)
			return a.Covers, err
		}
		loops = append(loops, slotWaits.Run, func(ctx context.Context) {
			follower.Follow(ctx, cfg.SyncPollInterval, logger)
		})
	}
	// Ready also means SpiceDB and Postgres answer now: a gateway that
	// cannot reach them answers 503, and must leave the load balancer.
	health, err := newDependencyHealth(reg, logger, spiceDBProbe(sdb), postgresProbe(st.Ping))
	if err != nil {
		return err
	}
	ready = health.readyWith(ready)
	loops = append(loops, health.Run)

	stale := mirror.NewStaleness(cfg.MaxStaleness)
	if cfg.MaxStaleness > 0 {
		loops = append(loops, func(ctx context.Context) { stale.Watch(ctx, st, coverage, cfg.SyncPollInterval, logger) })
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tenantgate_gateway_stale",
		Help: "1 while this gateway answers reads with 503 because a change committed to the mirrored tables has not reached SpiceDB within --max-staleness: the sync is down or stalled.",
	}, func() float64 {
		if stale.Stale() {
			return 1
		}
		return 0
	}))
	var authorizer gateway.Authorizer = sdb
	if cfg.Index {
		ix, err := index.NewAuthorizer(index.Config{Wait: cfg.IndexWait, VerifyFraction: cfg.IndexVerifyFraction},
			sdb.Client, sdb.Client, sdb.Client, reg, logger)
		if err != nil {
			return err
		}
		authorizer = ix
		loops = append(loops, ix.Run)
	}
	gw, err := gateway.New(gwCfg, gateway.Deps{
		Authn: verifier, Authz: authorizer, Companies: st, All: st, Manager: st, Users: sdb, Explainer: sdb.Client, Routes: forward,
		Console: consoleH, Ready: ready, Logger: logger, Registry: reg,
		Waits: &pastPositions{waits: waits, store: st}, Stale: stale.Stale,
		TracerProvider: tracing.TracerProvider(), Propagator: telemetry.Propagator(),
	})
	if err != nil {
		return err
	}
	running, rctx := errgroup.WithContext(ctx)
	for _, loop := range loops {
		running.Go(func() error { loop(rctx); return nil })
	}
	if syncLoop != nil {
		running.Go(func() error { return syncLoop(rctx) })
	}
	api.Ready(gw.Handler())
	ops.Ready(gw.OpsHandler())
	logger.Info("gateway started")
	err = running.Wait()
	stopServing()
	return err
}

// serveHTTP serves srv on ln (nil: a listener on srv.Addr) until ctx ends,
// then drains requests in flight for at most timeout.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, logger *slog.Logger) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", srv.Addr); err != nil {
			return fmt.Errorf("listen %s: %w", srv.Addr, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	logger.Info("stopped listening", "addr", ln.Addr().String())
	return nil
}
