package index_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/index"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/schema"
)

// TestSpiceDBWithoutWatchLeavesTheIndexOff: SpiceDB on a Postgres datastore
// without commit timestamps serves everything but Watch. The index loads,
// cannot follow, and turns itself off: reads go to SpiceDB at once and see
// every change, and loads are not repeated in a tight loop.
func TestSpiceDBWithoutWatchLeavesTheIndexOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	pg := testutil.NewTestPostgres(t)
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET track_commit_timestamp = off"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateDatabase(ctx, "spicedb", ""); err != nil {
		t.Fatal(err)
	}
	sdb, err := spicedb.StartEmbedded(ctx, spicedb.EmbeddedConfig{DatastoreURL: pg.URL("spicedb")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Stop(context.Background()) })
	if err := sdb.WriteSchema(ctx, schema.Schema); err != nil {
		t.Fatal(err)
	}
	write(t, sdb, authz.OpTouch, role("acme", authz.RoleViewer, "vera"))
	f := start(t, sdb, sdb.Client, index.Config{Wait: time.Minute})

	testutil.Eventually(t, time.Minute, func() error {
		if n := f.metric(t, "tenantgate_index_watch_restarts_total"); n < 3 {
			return fmt.Errorf("%v failed watches", n)
		}
		// It held vera's role when it was on.
		if n := f.metric(t, "tenantgate_index_relationships"); n != 0 {
			return errors.New("the index is still on")
		}
		return nil
	})
	// With a one-minute wait, a read that waited for the index would hold
	// the test up; it goes to SpiceDB, which has the revocation.
	token := write(t, sdb, authz.OpDelete, role("acme", authz.RoleViewer, "vera"))
	if check(t, f.a, "vera", authz.PermRead, "acme", token) {
		t.Error("a revoked role is still allowed")
	}
	if n := f.metric(t, "tenantgate_index_reads_total", "answered_by", "spicedb", "reason", "loading"); n != 1 {
		t.Errorf("%v reads went to SpiceDB because the index was off, want 1", n)
	}
	if n := f.metric(t, "tenantgate_index_loads_total"); n > 2 {
		t.Errorf("%v loads: a Watch that never works must not make the index reload in a loop", n)
	}
}
