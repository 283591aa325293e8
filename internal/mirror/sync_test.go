package mirror_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

// convergeBound is how long the sync may take to make SpiceDB equal to
// Postgres after the last change.
const convergeBound = 30 * time.Second

type env struct {
	t      *testing.T
	dbURL  string
	db     *pgxpool.Pool
	target *spicedb.Embedded
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dbURL := testutil.NewTestDatabase(t)
	db, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	// Runs after every sync of the test stopped: a persistent slot would
	// keep the database from being dropped.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testutil.DropReplicationSlots(ctx, dbURL); err != nil {
			t.Error(err)
		}
	})
	return &env{t: t, dbURL: dbURL, db: db, target: spicedbtest.NewEmbedded(t)}
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.db.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("exec %q: %v", sql, err)
	}
}

// running is a Syncer running in the background.
type running struct {
	syncer *mirror.Syncer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (e *env) config() mirror.Config {
	return mirror.Config{
		DatabaseURL:       e.dbURL,
		Persistent:        true,
		Slot:              "test_slot",
		ReconcileOnResume: true,
		StatusInterval:    200 * time.Millisecond,
		StandbyPoll:       50 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

func (e *env) start(cfg mirror.Config, target mirror.Target) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	s, err := mirror.New(cfg, target)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{syncer: s, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	e.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // later stops return at once
}

func (e *env) waitReady(r *running) {
	e.t.Helper()
	testutil.Eventually(e.t, time.Minute, func() error {
		select {
		case err := <-r.done:
			r.done <- err // for stop, which the cleanup still calls
			e.t.Fatalf("sync ended: %v", err)
		default:
		}
		if !r.syncer.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *env) expected() map[authz.Relationship]bool {
	e.t.Helper()
	want, err := testutil.ExpectedRelationships(context.Background(), e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	return want
}

func actual(t *testing.T, target mirror.Target) map[authz.Relationship]bool {
	t.Helper()
	got, err := testutil.ActualRelationships(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (e *env) waitConverged(target mirror.Target) {
	e.t.Helper()
	testutil.Eventually(e.t, convergeBound, func() error {
		if d := testutil.DiffRelationships(e.expected(), actual(e.t, target)); d != "" {
			return fmt.Errorf("spicedb differs from postgres: %s", d)
		}
		return nil
	})
}

func (e *env) seed(companies, members int) {
	e.t.Helper()
	e.exec(`INSERT INTO companies (id, name, parent_id)
		SELECT 'c' || i, 'Company ' || i, CASE WHEN i > 1 THEN 'c' || (i / 2) END FROM generate_series(1, $1) i`, companies)
	e.exec(`INSERT INTO company_memberships (user_id, company_id, role, status)
		SELECT 'u' || i || '@example.com', 'c' || (1 + i % $1),
		       (ARRAY['owner','admin','editor','viewer'])[1 + i % 4], (ARRAY['active','active','inactive','pending'])[1 + i % 4]
		FROM generate_series(1, $2) i`, companies, members)
}

func TestResumesFromPersistentSlot(t *testing.T) {
	e := newEnv(t)
	e.seed(50, 200)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	e.waitConverged(e.target)
	if n := testutil.MetricValue(t, r.reg, "tenantgate_sync_snapshot_rows_total"); n != 250 {
		t.Fatalf("first run read %v snapshot rows, want 250", n)
	}
	r.stop()

	// Changes made while no sync runs wait in the slot.
	e.exec(`UPDATE company_memberships SET role = 'owner' WHERE company_id = 'c7'`)
	e.exec(`DELETE FROM company_memberships WHERE company_id = 'c8'`)
	e.exec(`UPDATE companies SET parent_id = 'c2' WHERE id = 'c9'`)

	r = e.start(e.config(), e.target)
	e.waitReady(r)
	e.waitConverged(e.target)
	if n := testutil.MetricValue(t, r.reg, "tenantgate_sync_snapshot_rows_total"); n != 0 {
		t.Errorf("resumed run took a snapshot of %v rows; it should have resumed from the slot", n)
	}
	var checkpoints int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM tenantgate.sync_checkpoints WHERE slot = 'test_slot'`).Scan(&checkpoints); err != nil || checkpoints == 0 {
		t.Errorf("no checkpoints recorded (%d, %v)", checkpoints, err)
	}
}

func TestStartsOverWhenSlotIsGoneOrSpiceDBEmptied(t *testing.T) {
	e := newEnv(t)
	e.seed(30, 100)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	e.waitConverged(e.target)
	r.stop()

	t.Run("slot dropped", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Waits for the stopped sync's reader to leave the slot first.
		if err := testutil.DropReplicationSlots(ctx, e.dbURL); err != nil {
			t.Fatal(err)
		}
		e.exec(`DELETE FROM company_memberships WHERE company_id = 'c3'`)
		r := e.start(e.config(), e.target)
		e.waitReady(r)
		e.waitConverged(e.target)
		if n := testutil.MetricValue(t, r.reg, "tenantgate_sync_snapshot_rows_total"); n == 0 {
			t.Error("no fresh snapshot after the slot was dropped")
		}
		r.stop()
	})
	t.Run("spicedb replaced by an empty one", func(t *testing.T) {
		fresh := spicedbtest.NewEmbedded(t)
		r := e.start(e.config(), fresh)
		e.waitReady(r)
		e.waitConverged(fresh)
		if n := testutil.MetricValue(t, r.reg, "tenantgate_sync_reconcile_repairs_total"); n == 0 {
			t.Error("the reconcile on resume repaired nothing in an empty SpiceDB")
		}
		r.stop()
	})
}

// TestStartsOverWhenSlotIsLost lets PostgreSQL invalidate the slot of a
// stopped sync (its WAL grew past max_slot_wal_keep_size and a checkpoint
// removed it) while memberships change: the next sync must take a fresh
// snapshot, not resume from a slot that no longer holds those changes. The
// setting is the server's, so the test has a cluster of its own.
func TestStartsOverWhenSlotIsLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	pg := testutil.NewTestPostgres(t)
	dbURL := testutil.NewAppDatabase(t, pg)
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	e := &env{t: t, dbURL: dbURL, db: db, target: spicedbtest.NewEmbedded(t)}
	e.exec(`ALTER SYSTEM SET max_slot_wal_keep_size = '16MB'`)
	e.exec(`SELECT pg_reload_conf()`)
	e.seed(20, 100)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	e.waitConverged(e.target)
	r.stop()

	e.exec(`DELETE FROM company_memberships WHERE company_id = 'c2'`)
	e.exec(`UPDATE company_memberships SET role = 'viewer' WHERE company_id = 'c3'`)
	// WAL of an unpublished table, then checkpoints, until the server gives
	// the slot up.
	e.exec(`CREATE TABLE filler (x text)`)
	testutil.Eventually(t, time.Minute, func() error {
		e.exec(`INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 10000)`)
		e.exec(`SELECT pg_switch_wal()`)
		e.exec(`CHECKPOINT`)
		var status *string
		if err := db.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, e.config().Slot).Scan(&status); err != nil {
			return err
		}
		if status == nil || *status != "lost" {
			return fmt.Errorf("slot's wal_status is %v, not lost yet", status)
		}
		return nil
	})

	r = e.start(e.config(), e.target)
	e.waitReady(r)
	e.waitConverged(e.target)
	if n := testutil.MetricValue(t, r.reg, "tenantgate_sync_snapshot_rows_total"); n == 0 {
		t.Error("no fresh snapshot after the slot was lost")
	}
}

// TestSlotWALRetentionIsExposed reads the gauges an operator alerts on
// before the slot fills the server's disk (docs/operations.md).
func TestSlotWALRetentionIsExposed(t *testing.T) {
	e := newEnv(t)
	e.seed(5, 20)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	e.exec(`UPDATE company_memberships SET role = 'viewer'`)
	testutil.Eventually(t, 30*time.Second, func() error {
		if v := testutil.MetricValue(t, r.reg, "tenantgate_sync_slot_retained_wal_bytes"); v <= 0 {
			return fmt.Errorf("tenantgate_sync_slot_retained_wal_bytes = %v", v)
		}
		return nil
	})
}

func TestStandbyTakesOver(t *testing.T) {
	e := newEnv(t)
	e.seed(20, 50)
	active := e.start(e.config(), e.target)
	e.waitReady(active)
	standby := e.start(e.config(), e.target)
	e.exec(`UPDATE company_memberships SET status = 'active'`)
	e.waitConverged(e.target)
	if standby.syncer.Ready() {
		t.Fatal("two syncs are active on one slot")
	}
	active.stop()
	e.waitReady(standby)
	e.exec(`UPDATE company_memberships SET role = 'viewer' WHERE company_id IN ('c1', 'c2')`)
	e.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('late@example.com', 'c5', 'admin')`)
	e.waitConverged(e.target)
}

func TestWritesDuringInitialSnapshotAreKept(t *testing.T) {
	e := newEnv(t)
	e.seed(500, 20000)
	stop := make(chan struct{})
	wrote := make(chan int)
	go func() {
		ctx := context.Background()
		n := 0
		for {
			select {
			case <-stop:
				wrote <- n
				return
			default:
			}
			// Each row cycles through the roles; only the last value may
			// survive, so an update applied out of order shows as a wrong
			// role at the end.
			i := n % 400
			role := []string{"owner", "admin", "editor", "viewer"}[(n/400)%4]
			if _, err := e.db.Exec(ctx, `UPDATE company_memberships SET role = $1, status = 'active' WHERE user_id = $2`, role, fmt.Sprintf("u%d@example.com", i+1)); err != nil {
				t.Errorf("writer: %v", err)
			}
			if n%50 == 0 {
				if _, err := e.db.Exec(ctx, `INSERT INTO company_memberships (user_id, company_id, role) VALUES ($1, 'c1', 'viewer')`, fmt.Sprintf("new%d", n)); err != nil {
					t.Errorf("writer: %v", err)
				}
			}
			n++
		}
	}()
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	close(stop)
	n := <-wrote
	t.Logf("%d writes raced the snapshot", n)
	e.waitConverged(e.target)
	if n == 0 {
		t.Fatal("no write raced the snapshot")
	}
}

// TestReadyOnlyOnceCaughtUp commits a change after the slot's snapshot was
// taken but before the stream starts, and holds flushes back for a second:
// the sync must not report ready before that change is in SpiceDB, or a
// gateway would answer from a state older than, say, a revocation made
// while the snapshot was copied.
func TestReadyOnlyOnceCaughtUp(t *testing.T) {
	e := newEnv(t)
	e.seed(20, 200)
	cfg := e.config()
	cfg.FlushDelay = time.Second
	cfg.Logger = slog.New(onMessage{Handler: cfg.Logger.Handler(), msg: "sync: snapshot applied", do: func() {
		// On the sync's goroutine, which waits until it is committed.
		_, err := e.db.Exec(context.Background(), `INSERT INTO company_memberships (user_id, company_id, role) VALUES ('late@example.com', 'c1', 'owner')`)
		if err != nil {
			t.Errorf("insert during the snapshot: %v", err)
		}
	}})
	late := authz.Relationship{Resource: "c1", Relation: string(authz.RoleOwner), SubjectType: authz.TypeUser, SubjectID: "late@example.com"}
	r := e.start(cfg, e.target)
	e.waitReady(r)
	if !actual(t, e.target)[late] {
		t.Fatal("ready, but a membership committed while the snapshot was taken is not in SpiceDB")
	}
	e.waitConverged(e.target)
}

// onMessage runs do when a record with message msg is logged, before
// passing it on.
type onMessage struct {
	slog.Handler
	msg string
	do  func()
}

func (h onMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.do()
	}
	return h.Handler.Handle(ctx, r)
}

func TestReconcileRepairsDriftAndReports(t *testing.T) {
	e := newEnv(t)
	e.seed(40, 200)
	cfg := e.config()
	r := e.start(cfg, e.target)
	e.waitReady(r)
	e.waitConverged(e.target)

	want := e.expected()
	victims := slices.Collect(maps.Keys(want))[:7]
	var drift []authz.Update
	for _, v := range victims {
		drift = append(drift, authz.Update{Op: authz.OpDelete, Rel: v})
	}
	for i := range 5 {
		drift = append(drift, authz.Update{Op: authz.OpTouch, Rel: authz.Relationship{
			Resource: fmt.Sprintf("c%d", i+1), Relation: "owner", SubjectType: authz.TypeUser, SubjectID: fmt.Sprintf("intruder%d", i)}})
	}
	if _, err := e.target.Write(context.Background(), drift); err != nil {
		t.Fatal(err)
	}
	if d := testutil.DiffRelationships(want, actual(t, e.target)); d == "" {
		t.Fatal("drift was not injected")
	}

	// The request goes to the running sync, which does the work between
	// stream messages.
	requester, err := mirror.New(cfg, e.target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := requester.ReconcileNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Missing != 7 || res.Extra != 5 {
		t.Errorf("reconcile reported %+v, want 7 missing and 5 extra", res)
	}
	if d := testutil.DiffRelationships(want, actual(t, e.target)); d != "" {
		t.Errorf("after reconcile: %s", d)
	}
	var by string
	if err := e.db.QueryRow(ctx, `SELECT requested_by FROM tenantgate.sync_reconcile_runs WHERE finished_at IS NOT NULL AND missing = 7 AND extra = 5`).Scan(&by); err != nil {
		t.Errorf("reconcile run not recorded: %v", err)
	}

	// With no sync running, the requester does the work itself.
	r.stop()
	if _, err := e.target.Write(ctx, drift[:1]); err != nil {
		t.Fatal(err)
	}
	if res, err = requester.ReconcileNow(ctx); err != nil || res.Missing != 1 || res.Extra != 0 {
		t.Errorf("reconcile without an active sync = %+v, %v; want 1 missing", res, err)
	}
}

func TestUnmappableRowsGoToDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.exec(`INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`)
	e.exec(`INSERT INTO company_memberships (id, user_id, company_id, role) VALUES ('m-snap', '*', 'acme', 'owner')`)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	// Another program, on a table without tenantgate's check constraint,
	// writes a role tenantgate does not know.
	e.exec(`ALTER TABLE company_memberships DROP CONSTRAINT company_memberships_role_check`)
	e.exec(`INSERT INTO company_memberships (id, user_id, company_id, role) VALUES
		('m-stream', 'bad' || chr(7), 'acme', 'admin'), ('m-role', 'eve', 'acme', 'superuser'), ('m-good', 'good', 'acme', 'viewer')`)
	e.waitConverged(e.target)
	rows, err := e.db.Query(context.Background(), `SELECT row_id FROM tenantgate.sync_dead_letters ORDER BY row_id`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if want := []string{"m-role", "m-snap", "m-stream"}; !slices.Equal(ids, want) {
		t.Errorf("dead letters %v, want %v", ids, want)
	}
	if n := testutil.MetricValue(t, r.reg, "tenantgate_sync_dead_letters_total"); n < 3 {
		t.Errorf("dead letter metric %v, want at least 3", n)
	}
}
