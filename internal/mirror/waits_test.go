package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestRemoteGatewayReadyOnlyOnceTheSyncCaughtUp starts a remote-mode
// gateway's Follower while the sync is down after a change: the snapshot is
// long done, but the follower must not report ready until the sync has
// applied what was committed before the gateway started, so a revocation
// made while the sync was down cannot be answered from the older index.
func TestRemoteGatewayReadyOnlyOnceTheSyncCaughtUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dbURL := testutil.NewTestDatabase(t)
	t.Cleanup(func() {
		if err := testutil.DropReplicationSlots(context.Background(), dbURL); err != nil {
			t.Error(err)
		}
	})
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	target := spicedbtest.NewEmbedded(t)
	const slot = "follower_test"
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`)
	exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('alice', 'acme', 'owner'), ('mallory', 'acme', 'admin')`)

	runSync := func() (stop func()) {
		t.Helper()
		s, err := mirror.New(mirror.Config{DatabaseURL: dbURL, Persistent: true, Slot: slot, Logger: logger}, target)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		testutil.Eventually(t, time.Minute, func() error {
			if !s.Ready() {
				return fmt.Errorf("sync not ready")
			}
			return nil
		})
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sync: %v", err)
			}
		}
	}
	stopSync := runSync()
	stopSync()
	// Revoked while no sync runs; SpiceDB still grants it.
	exec(`DELETE FROM company_memberships WHERE user_id = 'mallory'`)

	f := mirror.NewFollower(mirror.NewAppliedReader(db, slot))
	if err := f.Poll(ctx, logger); err != nil {
		t.Fatal(err)
	}
	if f.Ready() {
		t.Fatal("ready while the sync has not applied a revocation committed before the gateway started")
	}

	defer runSync()()
	testutil.Eventually(t, time.Minute, func() error {
		if err := f.Poll(ctx, logger); err != nil {
			return err
		}
		if !f.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	got, err := testutil.ActualRelationships(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if revoked := (authz.Relationship{Resource: "acme", Relation: string(authz.RoleAdmin), SubjectType: authz.TypeUser, SubjectID: "mallory"}); got[revoked] {
		t.Fatal("ready, but the revocation is not in SpiceDB")
	}
}

// TestLSNWaitsShareOnePoller has many reads wait at once for a position no
// sync ever reaches: each must fail closed as unavailable, and the gateway
// must have read the sync's progress about once per interval, not once per
// waiting read per interval, which would load Postgres most when the sync
// is already behind.
func TestLSNWaitsShareOnePoller(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	db, err := pgxpool.New(ctx, testutil.NewTestDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	const every, readers = 15 * time.Millisecond, 50
	reg := prometheus.NewRegistry()
	waits, err := mirror.NewSlotWaits(mirror.NewAppliedReader(db, "no_such_slot"), every, reg)
	if err != nil {
		t.Fatal(err)
	}
	go waits.Run(ctx)
	began := time.Now()
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, errs[i] = waits.AwaitApplied(rctx, authz.LSN(1)<<40)
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	for i, err := range errs {
		if !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("read %d: %v, want an ErrUnavailable", i, err)
		}
	}
	// A ticker fires at most once per interval; a first waiter adds a poll
	// at once, a tick kept from before may add one, and one may start as
	// the last waiter leaves.
	polls, bound := testutil.MetricValue(t, reg, "tenantgate_gateway_applied_polls_total"), float64(elapsed/every)+3
	if polls < 1 || polls > bound {
		t.Fatalf("%d reads waiting %v made %.0f polls, want 1 to %.0f", readers, elapsed.Round(time.Millisecond), polls, bound)
	}
	t.Logf("%d reads waiting %v made %.0f polls", readers, elapsed.Round(time.Millisecond), polls)
}
