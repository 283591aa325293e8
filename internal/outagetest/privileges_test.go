package outagetest

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestLeastPrivilegeRoles runs every process of a remote installation as
// the role deploy/postgres/roles.sql makes for it, with exactly the rights
// deploy/postgres/grants.sql gives: migrate as the owner of tenantgate's
// objects, the sync with REPLICATION and its tables, the gateway without
// REPLICATION. A right missing from the files fails a step below; the
// files are what docs/operations.md tells operators to run.
func TestLeastPrivilegeRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := testutil.NewTestPostgres(t) // roles are the cluster's, so a cluster of its own
	execFile(t, pg.URL("postgres"), "../../deploy/postgres/roles.sql")
	testutil.ExecSQL(t, pg.URL("postgres"), "create database app owner tenantgate_migrate")
	as := func(role string) string {
		u, err := url.Parse(pg.URL("app"))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.User(role)
		return u.String()
	}

	sdb, err := testutil.StartSpiceDB(ctx, testutil.SpiceDBOptions{DatastoreURL: testutil.NewEmptyTestDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close(context.Background()) })
	spiceDB := []string{"--spicedb-endpoint", sdb.Endpoint(), "--spicedb-token", sdb.Token(), "--spicedb-insecure"}

	migrate := testutil.StartTenantgate(t, "migrate", append([]string{"migrate", "--database-url", as("tenantgate_migrate")}, spiceDB...)...)
	showLogIfFailed(t, "migrate", migrate)
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := migrate.Wait(waitCtx); err != nil {
		t.Fatalf("tenantgate migrate as tenantgate_migrate: %v", err)
	}
	execFile(t, as("tenantgate_migrate"), "../../deploy/postgres/grants.sql")
	// The application's rows, written by the tables' owner as the
	// application would.
	testutil.ExecSQL(t, as("tenantgate_migrate"), seed)

	t.Cleanup(func() {
		testutil.ExecSQL(t, pg.URL("app"), "select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active")
	})
	syncAddr := freeAddr(t)
	syncProc := testutil.StartTenantgate(t, "sync", append([]string{"sync", "--metrics-addr", syncAddr, "--database-url", as("tenantgate_sync")}, spiceDB...)...)
	showLogIfFailed(t, "sync", syncProc)
	testutil.AwaitReadyz(t, syncAddr, http.StatusOK, 2*time.Minute)

	iss := newIssuer(t)
	g := startGateway(t, "gateway", append(append([]string{"--database-url", as("tenantgate_gateway")}, spiceDB...), iss.fileFlags()...)...)
	testutil.Eventually(t, time.Minute, func() error { return g.decides(iss, readersBefore) })

	// The management API writes memberships and their audit trail as the
	// gateway's role; the sync streams them as its own.
	alice := iss.token("alice")
	for _, r := range []request{grantCarolRequest, {"DELETE", "/v1/companies/acme/members/bob", ""}} {
		a, err := g.ask(r, alice)
		if err != nil {
			t.Fatal(err)
		}
		if a.status >= 300 {
			t.Fatalf("%s %s as the gateway's role: %v", r.method, r.path, a)
		}
	}
	testutil.Eventually(t, time.Minute, func() error { return g.decides(iss, readersAfter) })
	a, err := g.ask(request{"GET", "/v1/companies/acme/audit", ""}, alice)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != http.StatusOK || !strings.Contains(a.body, "carol") {
		t.Errorf("audit trail as the gateway's role: %v, want the grant to carol", a)
	}
}

// execFile runs the SQL file at path on dbURL.
func execFile(t *testing.T, dbURL, path string) {
	t.Helper()
	sql, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	testutil.ExecSQL(t, dbURL, string(sql))
}
