package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// failBound is how soon a sync must give up on a refusal no retry cures.
const failBound = 30 * time.Second

// checksByName indexes the preflight's checks.
func checksByName(checks []mirror.Check) map[string]mirror.Check {
	m := map[string]mirror.Check{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

func checkReplication(t *testing.T, dbURL string) map[string]mirror.Check {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return checksByName(mirror.CheckReplication(ctx, dbURL, "test_slot"))
}

// wantFailure asserts the check failed, with a fix naming want.
func wantFailure(t *testing.T, checks map[string]mirror.Check, name, want string) {
	t.Helper()
	c, ok := checks[name]
	if !ok || c.Status != mirror.StatusFail || !strings.Contains(c.Fix, want) {
		t.Errorf("check %q = %+v; want a failure whose fix names %q", name, c, want)
	}
}

// runSyncOnce runs one persistent sync and returns its error, failing the
// test if it has not ended within failBound; poke, when set, is called
// until it does (to put changes in the stream).
func runSyncOnce(t *testing.T, dbURL string, poke func()) error {
	t.Helper()
	s, err := mirror.New(mirror.Config{DatabaseURL: dbURL, Persistent: true, Slot: "test_slot",
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Registry: prometheus.NewRegistry()}, spicedbtest.NewEmbedded(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), failBound)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var runErr error
	testutil.Eventually(t, failBound, func() error {
		select {
		case runErr = <-done:
			return nil
		default:
			if poke != nil {
				poke()
			}
			return errors.New("sync still running")
		}
	})
	return runErr
}

func wantInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Errorf("sync ended with %v; want authz.ErrInvalid naming %q", err, want)
	}
}

func execSQL(t *testing.T, dbURL string, sqls ...string) {
	t.Helper()
	// Not t.Context: cleanups run this too, after it ended.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, sql := range sqls {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("exec %q: %v", sql, err)
		}
	}
}

func TestPreflightPassesOnAGoodDatabase(t *testing.T) {
	checks := checkReplication(t, testutil.NewTestDatabase(t))
	for _, c := range checks {
		if c.Status == mirror.StatusFail {
			t.Errorf("check %s failed: %s (fix: %s)", c.Name, c.Detail, c.Fix)
		}
	}
	if c := checks["replication privilege"]; !strings.Contains(c.Detail, "superuser") {
		t.Errorf("replication privilege: %q, want the superuser named", c.Detail)
	}
}

func TestPreflightAndSyncRefuseMissingPublication(t *testing.T) {
	dbURL := testutil.NewTestDatabase(t)
	t.Cleanup(func() { dropSlots(t, dbURL) })
	execSQL(t, dbURL, `DROP PUBLICATION tenantgate`)
	wantFailure(t, checkReplication(t, dbURL), "publication", "tenantgate migrate")
	// pgoutput looks the publication up at the first change it decodes.
	n := 0
	err := runSyncOnce(t, dbURL, func() {
		n++
		execSQL(t, dbURL, fmt.Sprintf(`INSERT INTO companies (id, name) VALUES ('poke%d', 'poke')`, n))
	})
	wantInvalid(t, err, "tenantgate migrate")
}

func TestPreflightRefusesReplicaIdentityDefault(t *testing.T) {
	dbURL := testutil.NewTestDatabase(t)
	execSQL(t, dbURL, `ALTER TABLE company_memberships REPLICA IDENTITY DEFAULT`)
	wantFailure(t, checkReplication(t, dbURL), "replica identity", "REPLICA IDENTITY FULL")
}

func TestPreflightAndSyncRefuseUserWithoutReplication(t *testing.T) {
	dbURL := testutil.NewTestDatabase(t)
	// Roles are the cluster's: a name of this test's alone.
	const role = "tg_preflight_norepl"
	execSQL(t, dbURL, `DROP ROLE IF EXISTS `+role, `CREATE ROLE `+role+` LOGIN NOREPLICATION`,
		`GRANT ALL ON SCHEMA tenantgate TO `+role, `GRANT ALL ON ALL TABLES IN SCHEMA tenantgate TO `+role,
		`GRANT SELECT ON companies, company_memberships TO `+role)
	t.Cleanup(func() {
		execSQL(t, dbURL, `REVOKE ALL ON ALL TABLES IN SCHEMA tenantgate FROM `+role, `REVOKE ALL ON SCHEMA tenantgate FROM `+role,
			`REVOKE ALL ON companies, company_memberships FROM `+role, `DROP ROLE `+role)
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	checks := checkReplication(t, u.String())
	wantFailure(t, checks, "replication privilege", "WITH REPLICATION")
	wantFailure(t, checks, "replication connection", "REPLICATION")
	wantInvalid(t, runSyncOnce(t, u.String(), nil), "WITH REPLICATION")
}

func TestPreflightAndSyncRefuseWALLevelReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg := testutil.NewTestPostgres(t, "wal_level = replica")
	if err := pg.CreateDatabase(ctx, "app", ""); err != nil {
		t.Fatal(err)
	}
	dbURL := pg.URL("app")
	var migrateLog bytes.Buffer
	if err := store.Migrate(ctx, dbURL, slog.New(slog.NewTextHandler(&migrateLog, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(migrateLog.String(), "level=WARN msg=\"wal_level is not logical") {
		t.Errorf("migrate did not warn of wal_level:\n%s", migrateLog.String())
	}
	wantFailure(t, checkReplication(t, dbURL), "wal_level", "wal_level = logical")
	wantInvalid(t, runSyncOnce(t, dbURL, nil), "wal_level = logical")
}

func dropSlots(t *testing.T, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testutil.DropReplicationSlots(ctx, dbURL); err != nil {
		t.Error(err)
	}
}

// TestSyncExportsSlotStatus: the active sync shows its slot as Postgres
// does, every wal_status but the slot's own at 0.
func TestSyncExportsSlotStatus(t *testing.T) {
	e := newEnv(t)
	e.seed(5, 20)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	// Sampled every 15s; the first sample may precede the stream.
	testutil.Eventually(t, 40*time.Second, func() error {
		if v := testutil.MetricValue(t, r.reg, "tenantgate_sync_slot_active"); v != 1 {
			return fmt.Errorf("tenantgate_sync_slot_active = %v", v)
		}
		return nil
	})
	for status, want := range map[string]float64{"reserved": 1, "lost": 0, "missing": 0} {
		if v := testutil.MetricValue(t, r.reg, "tenantgate_sync_slot_wal_status", "status", status); v != want {
			t.Errorf("tenantgate_sync_slot_wal_status{status=%q} = %v, want %v", status, v, want)
		}
	}
}
