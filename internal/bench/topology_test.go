package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/loadbench"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// cluster is the one PostgreSQL server of a run: the application databases
// and every SpiceDB's datastore live on it, as they would on a small
// production server, so the sync and the ceiling compete for the same
// disk and cores.
type cluster struct {
	pg         *devenv.Postgres
	postmaster int
	tenantgate string
	logDir     string
	// datastoreParams are appended to every SpiceDB's datastore URL.
	datastoreParams string
}

func startCluster(ctx context.Context, b *testing.B, datastoreParams string) *cluster {
	b.Helper()
	pg := testutil.NewTestPostgres(b)
	bin, err := testutil.BuildTenantgate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// StartSpiceDB would build SpiceDB on first use; building it up front
	// (minutes on a cold cache) keeps that out of the first measurement.
	if _, err := testutil.BuildSpiceDB(ctx); err != nil {
		b.Fatal(err)
	}
	if err := enableStatementStats(ctx, pg); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	st, err := readProcStat(backend)
	if err != nil {
		b.Fatal(err)
	}
	// The logs outlive the run: they are the evidence behind its figures.
	logDir, err := os.MkdirTemp("", "tenantgate-bench-logs-")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("sync and SpiceDB logs are kept in %s", logDir)
	return &cluster{pg: pg, postmaster: st.ppid, tenantgate: bin, logDir: logDir, datastoreParams: datastoreParams}
}

// appDB is an application database with seeded rows.
type appDB struct {
	name string
	url  string
	pool *pgxpool.Pool
	rows int
	// rels are the relationships the rows stand for, as the sync derives
	// them, for the ceiling to write.
	rels []authz.Relationship
}

// newAppDB creates, migrates and seeds database name with rows memberships.
func (c *cluster) newAppDB(ctx context.Context, b *testing.B, name string, rows int) *appDB {
	b.Helper()
	if err := c.pg.CreateDatabase(ctx, name, ""); err != nil {
		b.Fatal(err)
	}
	url := c.pg.URL(name)
	if err := store.Migrate(ctx, url, nil); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	began := time.Now()
	if err := seed(ctx, pool, rows); err != nil {
		b.Fatal(err)
	}
	rels, err := loadRelationships(ctx, pool)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %s: %d memberships, %d relationships in %v (load %s)",
		name, rows, len(rels), time.Since(began).Round(time.Millisecond), loadbench.LoadAverage())
	return &appDB{name: name, url: url, pool: pool, rows: rows, rels: rels}
}

// seed writes rows memberships with one INSERT ... SELECT each for the
// companies and the memberships: a tree of rows/100 companies (at least 10),
// ten per parent, and users in ten companies each, with e-mail user IDs (the
// common case, which SpiceDB cannot hold unencoded). Every membership is
// active, so rows and membership relationships are equal in number.
// Membership i has ID "m<i>", for the streaming benchmarks to update.
func seed(ctx context.Context, db *pgxpool.Pool, rows int) error {
	companies := max(rows/100, 10)
	// users * 10 >= rows keeps i/users below 10 <= companies, so the ten
	// companies of one user, (u*31 + k) % companies, are distinct.
	users := (rows + 9) / 10
	if _, err := db.Exec(ctx, `
		INSERT INTO companies (id, name, parent_id)
		SELECT 'c' || g, 'Company ' || g, CASE WHEN g = 0 THEN NULL ELSE 'c' || ((g - 1) / 10) END
		FROM generate_series(0, $1::int - 1) g`, companies); err != nil {
		return fmt.Errorf("seed companies: %w", err)
	}
	if _, err := db.Exec(ctx, `
		INSERT INTO company_memberships (id, user_id, company_id, role)
		SELECT 'm' || g, 'user' || (g % $2::int) || '@example.com', 'c' || (((g % $2::int) * 31 + g / $2::int) % $3::int),
		       (ARRAY['owner', 'admin', 'editor', 'viewer'])[1 + g % 4]
		FROM generate_series(0, $1::int - 1) g`, rows, users, companies); err != nil {
		return fmt.Errorf("seed memberships: %w", err)
	}
	// Fresh statistics, as a table this size would have in production; the
	// snapshot itself reads with sequential scans either way.
	if _, err := db.Exec(ctx, `VACUUM ANALYZE companies, company_memberships`); err != nil {
		return fmt.Errorf("seed: analyze: %w", err)
	}
	return nil
}

// loadRelationships derives the relationships of every row with the
// domain's own mapping, so the ceiling writes exactly what the sync writes.
func loadRelationships(ctx context.Context, db *pgxpool.Pool) ([]authz.Relationship, error) {
	var rels []authz.Relationship
	rows, err := db.Query(ctx, `SELECT id, parent_id FROM companies WHERE parent_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("load relationships: %w", err)
	}
	for rows.Next() {
		var c authz.Company
		if err := rows.Scan(&c.ID, &c.ParentID); err != nil {
			return nil, fmt.Errorf("load relationships: %w", err)
		}
		if rel, ok := authz.ParentRelationship(c); ok {
			rels = append(rels, rel)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load relationships: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT user_id, company_id, role, status FROM company_memberships`)
	if err != nil {
		return nil, fmt.Errorf("load relationships: %w", err)
	}
	for rows.Next() {
		var m authz.Membership
		if err := rows.Scan(&m.UserID, &m.CompanyID, &m.Role, &m.Status); err != nil {
			return nil, fmt.Errorf("load relationships: %w", err)
		}
		if rel, ok := authz.MembershipRelationship(m); ok {
			rels = append(rels, rel)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load relationships: %w", err)
	}
	return rels, nil
}

// spiceDB is a `spicedb serve` on a datastore database of its own, so every
// measurement starts from an empty SpiceDB.
type spiceDB struct {
	*testutil.SpiceDB
	cluster *cluster
	name    string
	logDir  string
	pid     int
	client  *spicedb.Client
	// datastoreURL is SpiceDB's own database, for its table statistics.
	datastoreURL string
}

// dropDatabase removes a database the run is done with, so autovacuum of
// its million rows cannot take cores from later measurements, and WAL of
// other databases does not grow.
func (c *cluster) dropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// startSpiceDB starts SpiceDB on a new database name with tenantgate's
// schema written by `tenantgate migrate`, as a deployment does.
func (c *cluster) startSpiceDB(ctx context.Context, name string) (*spiceDB, error) {
	if err := c.pg.CreateDatabase(ctx, name, ""); err != nil {
		return nil, err
	}
	datastoreURL := c.pg.URL(name)
	if c.datastoreParams != "" {
		datastoreURL += "&" + c.datastoreParams
	}
	sdb, err := testutil.StartSpiceDB(ctx, testutil.SpiceDBOptions{DatastoreURL: datastoreURL})
	if err != nil {
		return nil, err
	}
	s := &spiceDB{SpiceDB: sdb, cluster: c, name: name, logDir: c.logDir, datastoreURL: c.pg.URL(name)}
	s.pid, err = spicedbPID(sdb.Endpoint())
	if err == nil {
		s.client, err = spicedb.Dial(spicedb.RemoteConfig{Endpoint: sdb.Endpoint(), Token: sdb.Token(), Insecure: true})
	}
	if err == nil {
		err = c.migrate(ctx, sdb)
	}
	if err != nil {
		return nil, errors.Join(err, s.close(ctx))
	}
	return s, nil
}

// migrate runs `tenantgate migrate` on sdb, which writes the schema that
// sync only waits for.
func (c *cluster) migrate(ctx context.Context, sdb *testutil.SpiceDB) error {
	out, err := exec.CommandContext(ctx, c.tenantgate, "migrate", "--spicedb-endpoint", sdb.Endpoint(),
		"--spicedb-token", sdb.Token(), "--spicedb-insecure").CombinedOutput()
	if err != nil {
		return fmt.Errorf("tenantgate migrate: %w\n%s", err, out)
	}
	return nil
}

// close stops SpiceDB, keeps the tail of its log (its own dir goes with
// it) and drops its datastore, also when ctx has ended.
func (s *spiceDB) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var err error
	if s.client != nil {
		err = s.client.Close()
	}
	logErr := os.WriteFile(filepath.Join(s.logDir, s.name+".log"), []byte(s.Output()), 0o644)
	if err := errors.Join(err, logErr, s.Close(ctx)); err != nil {
		return err
	}
	return s.cluster.dropDatabase(ctx, s.name)
}

// spicedbPID finds the `spicedb serve` child of this process that listens on
// endpoint; testutil does not expose it, and its peak memory is part of the
// record.
func spicedbPID(endpoint string) (int, error) {
	for _, pid := range children(os.Getpid()) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		for arg := range strings.SplitSeq(string(cmdline), "\x00") {
			if arg == "--grpc-addr="+endpoint {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no spicedb child process serves %s", endpoint)
}

// syncProc is a running `tenantgate sync`.
type syncProc struct {
	*testutil.Process
	addr    string
	slot    string
	logFile string
}

// startSync starts `tenantgate sync` for app against sdb on a slot of its
// own: slot names are global to the cluster, and a persistent slot outlives
// its sync.
func (c *cluster) startSync(app *appDB, sdb *spiceDB, slot string) (*syncProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(c.logDir, slot+".log")
	p, err := testutil.StartProcess(testutil.ProcessOptions{
		Path: c.tenantgate,
		Args: []string{"sync", "--database-url", app.url, "--spicedb-endpoint", sdb.Endpoint(),
			"--spicedb-token", sdb.Token(), "--spicedb-insecure", "--metrics-addr", addr,
			"--sync-slot", slot, "--log-format", "json"},
		LogFile: logFile,
	})
	if err != nil {
		return nil, err
	}
	return &syncProc{Process: p, addr: addr, slot: slot, logFile: logFile}, nil
}

// awaitReady polls /readyz until it answers 200: the snapshot is copied,
// reconciled and the stream has started. A sync that logs an error has
// restarted its run, which voids the measurement, so that ends the wait at
// once rather than at the run's timeout.
func (s *syncProc) awaitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if line := s.firstError(); line != "" {
			return fmt.Errorf("sync failed before it was ready: %s", line)
		}
		select {
		case <-s.Done():
			return fmt.Errorf("sync exited before it was ready: %w\n%s", s.Wait(ctx), s.Output())
		case <-ctx.Done():
			return fmt.Errorf("sync not ready: %w\n%s", context.Cause(ctx), s.Output())
		case <-tick.C:
		}
	}
}

// firstError is the sync's first log line at level ERROR, if any.
func (s *syncProc) firstError() string {
	data, err := os.ReadFile(s.logFile)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, `"level":"ERROR"`) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func (s *syncProc) metrics(ctx context.Context) (map[string]float64, error) {
	return loadbench.ScrapeMetrics(ctx, "http://"+s.addr+"/metrics",
		"tenantgate_sync_batch_size_sum", "tenantgate_sync_batch_size_count", "tenantgate_sync_transactions_total")
}

// slotBacklog is how much WAL the sync's slot has not confirmed yet: what
// logical decoding still has to read, whichever database wrote it, before
// it reaches a change committed now.
func (s *syncProc) slotBacklog(ctx context.Context, app *appDB) (int64, error) {
	var behind int64
	err := app.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&behind)
	if err != nil {
		return 0, fmt.Errorf("slot %s backlog: %w", s.slot, err)
	}
	return behind, nil
}

// walsender is the pid of the server process decoding the slot.
func (s *syncProc) walsender(ctx context.Context, app *appDB) int {
	var pid int
	_ = app.pool.QueryRow(ctx, `SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&pid)
	return pid
}

// stop ends the sync and drops its slot, which would otherwise keep WAL for
// the rest of the run.
// The walsender of a stopped sync outlives it briefly, and an active slot
// cannot be dropped, so the drop waits for it to leave.
func (s *syncProc) stop(ctx context.Context, app *appDB) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := app.pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name)
			FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NULL`, s.slot)
		if err != nil {
			return fmt.Errorf("drop slot %s: %w", s.slot, err)
		}
		var left bool
		if err := app.pool.QueryRow(ctx, `SELECT exists (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, s.slot).Scan(&left); err != nil {
			return fmt.Errorf("drop slot %s: %w", s.slot, err)
		}
		if !left {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop slot %s: still active: %w", s.slot, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free address: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writerPool connects the benchmark's application writers. The test cluster
// runs with synchronous_commit=off, under which a commit reaches logical
// decoding only when the WAL writer flushes it (every wal_writer_delay,
// 200 ms by default); an application on a production server commits
// synchronously, so the writers do too unless asked otherwise.
func writerPool(ctx context.Context, url string, conns int, syncCommit bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("writer pool: %w", err)
	}
	cfg.MaxConns = int32(conns)
	cfg.MinConns = int32(conns)
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = map[bool]string{true: "on", false: "off"}[syncCommit]
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("writer pool: %w", err)
	}
	return pool, nil
}

// toggleSQL flips one membership's role, so every change moves a
// relationship: a DELETE of the old one and a TOUCH of the new one in
// SpiceDB. It returns the WAL insert position before the commit: the
// transaction's commit ends after it.
const toggleSQL = `UPDATE company_memberships
	SET role = CASE WHEN role = 'viewer' THEN 'editor' ELSE 'viewer' END, updated_at = now()
	WHERE id = $1 RETURNING pg_current_wal_insert_lsn()`

func membershipID(i int) string { return "m" + strconv.Itoa(i) }

// awaitCheckpoint polls until the sync has recorded a checkpoint past lsn,
// and returns when it did: the sync writes the row right after SpiceDB
// acknowledged the write that covers every commit up to it.
func awaitCheckpoint(ctx context.Context, db *pgxpool.Pool, slot string, lsn authz.LSN) (time.Time, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var at time.Time
		err := db.QueryRow(ctx, `SELECT applied_at FROM tenantgate.sync_checkpoints
			WHERE slot = $1 AND lsn > $2::pg_lsn ORDER BY lsn LIMIT 1`, slot, lsn.String()).Scan(&at)
		switch {
		case err == nil:
			return at, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return time.Time{}, fmt.Errorf("await checkpoint past %s: %w", lsn, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("await checkpoint past %s: %w", lsn, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// tupleStats describes SpiceDB's relationship table as PostgreSQL's
// statistics see it: how it was scanned (a sequential scan per write would
// make writes cost as much as the table is large) and whether the planner
// has statistics yet (a bulk load leaves it without until autovacuum runs).
func (s *spiceDB) tupleStats(ctx context.Context) string {
	conn, err := pgx.Connect(ctx, s.datastoreURL)
	if err != nil {
		return fmt.Sprintf("relation_tuple: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var live, dead, seqScans, seqRead, idxScans int64
	var analyzed *time.Time
	err = conn.QueryRow(ctx, `SELECT n_live_tup, n_dead_tup, seq_scan, seq_tup_read, coalesce(idx_scan, 0),
			greatest(last_analyze, last_autoanalyze)
		FROM pg_stat_user_tables WHERE relname = 'relation_tuple'`).Scan(&live, &dead, &seqScans, &seqRead, &idxScans, &analyzed)
	if err != nil {
		return fmt.Sprintf("relation_tuple: %v", err)
	}
	when := "never analyzed"
	if analyzed != nil {
		when = "analyzed " + time.Since(*analyzed).Round(time.Second).String() + " ago"
	}
	return fmt.Sprintf("relation_tuple (statistics, which lag by a second or so): %d live, %d dead rows, %d sequential scans (%d rows read), %d index scans, %s",
		live, dead, seqScans, seqRead, idxScans, when)
}

// analyze refreshes the planner statistics of SpiceDB's relationship table,
// as an operator does after a bulk import (docs/operations.md): until
// autovacuum gets to it, PostgreSQL plans SpiceDB's deletes as if the table
// were empty and scans all of it for every write request.
func (s *spiceDB) analyze(ctx context.Context, b *testing.B) error {
	conn, err := pgx.Connect(ctx, s.datastoreURL)
	if err != nil {
		return fmt.Errorf("analyze relation_tuple: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	began := time.Now()
	if _, err := conn.Exec(ctx, `ANALYZE relation_tuple`); err != nil {
		return fmt.Errorf("analyze relation_tuple: %w", err)
	}
	b.Logf("ANALYZE relation_tuple on SpiceDB's datastore took %v", time.Since(began).Round(time.Millisecond))
	return nil
}

// enableStatementStats loads pg_stat_statements, with planning time, so a
// stream measurement can say which statements PostgreSQL spent its time on.
func enableStatementStats(ctx context.Context, pg *devenv.Postgres) error {
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("statement stats: %w", err)
	}
	_, err = conn.Exec(ctx, `ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements`)
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("statement stats: %w", err)
	}
	if err := pg.Restart(ctx); err != nil {
		return fmt.Errorf("statement stats: %w", err)
	}
	conn, err = pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("statement stats: %w", err)
	}
	defer conn.Close(ctx)
	// The library's settings exist only once it is loaded.
	for _, q := range []string{
		`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`,
		`ALTER SYSTEM SET pg_stat_statements.track_planning = on`,
		`SELECT pg_reload_conf()`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("statement stats: %w", err)
		}
	}
	return nil
}

// resetStatementStats starts a new statement profile.
func (c *cluster) resetStatementStats(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("statement stats: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return fmt.Errorf("statement stats: %w", err)
	}
	return nil
}

// statementProfile lists the statements that took the most server time
// (planning plus execution) since the last reset, across all databases.
func (c *cluster) statementProfile(ctx context.Context, top int) (string, error) {
	conn, err := pgx.Connect(ctx, c.pg.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("statement stats: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT d.datname, s.calls, s.total_plan_time, s.total_exec_time, s.rows, left(regexp_replace(s.query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		ORDER BY s.total_plan_time + s.total_exec_time DESC LIMIT $1`, top)
	if err != nil {
		return "", fmt.Errorf("statement stats: %w", err)
	}
	var out strings.Builder
	for rows.Next() {
		var db, query string
		var calls, nrows int64
		var plan, exec float64
		if err := rows.Scan(&db, &calls, &plan, &exec, &nrows, &query); err != nil {
			return "", fmt.Errorf("statement stats: %w", err)
		}
		fmt.Fprintf(&out, "\n  %s: %d calls, plan %.0f ms, exec %.0f ms (%.2f ms/call), %d rows: %s", db, calls, plan, exec, (plan+exec)/float64(max(calls, 1)), nrows, query)
	}
	return out.String(), rows.Err()
}
