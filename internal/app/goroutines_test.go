package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestServeAndSyncLeaveNoGoroutine starts and stops `serve` (embedded
// SpiceDB, the sync in-process) and `sync` (against a `spicedb serve`
// process) a few times each: once they return, every goroutine they
// started has ended.
func TestServeAndSyncLeaveNoGoroutine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sdb, err := testutil.StartSpiceDB(ctx, testutil.SpiceDBOptions{DatastoreURL: testutil.NewEmptyTestDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close(context.Background()) })
	migrateSpiceDB(t, sdb)
	dbURL := testutil.NewTestDatabase(t)
	t.Cleanup(func() { dropSlots(t, dbURL) })
	before := goleak.IgnoreCurrent()

	for round := range 3 {
		t.Run(fmt.Sprintf("serve %d", round), func(t *testing.T) {
			s := startEmbeddedStack(t, treeSeed)
			if !s.check("alice", "read", "holding") {
				t.Fatal("alice cannot read holding")
			}
			t.Cleanup(s.client.CloseIdleConnections)
		})
		t.Run(fmt.Sprintf("sync %d", round), func(t *testing.T) {
			cfg := app.Default()
			cfg.DatabaseURL = dbURL
			cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = sdb.Endpoint(), sdb.Token(), true
			cfg.MetricsAddr = freeAddr(t)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- app.Sync(runCtx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
			}()
			testutil.AwaitReadyz(t, cfg.MetricsAddr, 200, time.Minute)
			stop()
			if err := <-done; err != nil {
				t.Fatalf("sync returned %v", err)
			}
		})
	}
	goleak.VerifyNone(t, before)
}
