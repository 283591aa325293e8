package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/store"
	membersync "github.com/tenantgate/tenantgate/internal/sync"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestRemoteGatewayReadyOnlyOnceTheSyncCaughtUp starts a remote-mode
// gateway's follower while the sync is down after a change: the snapshot is
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
	st, err := store.Open(ctx, dbURL, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
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
		s, err := membersync.New(membersync.Config{DatabaseURL: dbURL, Persistent: true, Slot: slot, Logger: logger}, target)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		eventually(t, time.Minute, func() error {
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

	f := &app.SyncFollower{}
	if err := f.Poll(ctx, st, slot, logger); err != nil {
		t.Fatal(err)
	}
	if f.Ready() {
		t.Fatal("ready while the sync has not applied a revocation committed before the gateway started")
	}

	defer runSync()()
	eventually(t, time.Minute, func() error {
		if err := f.Poll(ctx, st, slot, logger); err != nil {
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
