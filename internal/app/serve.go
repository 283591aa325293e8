package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/store"
	membersync "github.com/tenantgate/tenantgate/internal/sync"
)

// Serve runs the REST gateway until ctx ends. With embedded SpiceDB it also
// runs the sync in-process and is ready once the initial snapshot is in.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	for _, check := range []func() error{cfg.Validate, cfg.requireDatabase, cfg.requireIdentity} {
		if err := check(); err != nil {
			return err
		}
	}
	logger.Info("starting gateway", "config", cfg)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	st, err := store.Open(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Reads without a consistency token of their own are made at least as
	// fresh as the last change the sync applied: the sync in this process
	// with embedded SpiceDB, the sync's checkpoints otherwise.
	var syncer *membersync.Syncer
	follower := &syncFollower{}
	floor := follower.token
	if cfg.SpiceDBEndpoint == "" {
		floor = func() string { return syncer.LatestToken() }
	}
	sdb, err := openSpiceDB(ctx, cfg, logger, spicedb.WithFreshnessFloor(floor))
	if err != nil {
		return err
	}
	defer sdb.stop(context.WithoutCancel(ctx)) //nolint:errcheck // shutting down

	var ready func() bool
	// Reads carrying a write's WAL position wait for the sync to apply it.
	var freshness gateway.Freshness
	if sdb.embedded {
		// The memory datastore starts empty, so it takes a fresh snapshot
		// on a temporary slot; a Postgres datastore keeps a persistent one.
		syncer, err = newSyncer(cfg, cfg.SpiceDBDatastoreURL != "", logger, reg, sdb)
		if err != nil {
			return err
		}
		ready = syncer.Ready
		freshness = syncerFreshness{syncer: syncer}
		go runSync(ctx, syncer, logger)
	} else {
		ready = follower.ready
		waits, err := newSlotFreshness(st, cfg.SyncSlot, appliedPollInterval, reg)
		if err != nil {
			return err
		}
		freshness = waits
		go waits.run(ctx)
		go follower.follow(ctx, st, cfg.SyncSlot, cfg.SyncPollInterval, logger)
	}

	verifier, err := identity.New(ctx, identity.Config{
		JWKSURL: cfg.JWKSURL, JWKSFile: cfg.JWKSFile,
		Issuer: cfg.Issuer, Audience: cfg.Audience, SubjectClaim: cfg.SubjectClaim,
		Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	gw, err := gateway.New(gateway.Config{ServiceToken: cfg.ServiceToken, ConsistencyWait: cfg.ConsistencyWait}, gateway.Deps{
		Authn: verifier, Authz: sdb, Companies: st, Manager: st, Users: sdb, Ready: ready, Logger: logger, Registry: reg,
		Freshness: freshness,
	})
	if err != nil {
		return err
	}
	return listenAndServe(ctx, cfg, gw.Server(cfg.HTTPAddr), logger)
}

// listenAndServe serves until ctx ends, then drains requests in flight for
// at most ShutdownTimeout.
func listenAndServe(ctx context.Context, cfg Config, srv *http.Server, logger *slog.Logger) error {
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("gateway listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdown(srv, cfg.ShutdownTimeout)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	logger.Info("gateway stopped")
	return nil
}
