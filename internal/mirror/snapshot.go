package mirror

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// connectReplication opens a logical replication connection.
func connectReplication(ctx context.Context, src source) (*pgconn.PgConn, error) {
	cfg, err := src.connConfig()
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("sync: replication connection: %w", classify(err, authz.ErrUnavailable))
	}
	return conn, nil
}

func dropSlot(ctx context.Context, repl *pgconn.PgConn, slot string) error {
	if err := pglogrepl.DropReplicationSlot(ctx, repl, slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
		return fmt.Errorf("sync: drop slot %s: %w", slot, classify(err, nil))
	}
	return nil
}

// snapshotNamePattern is the form of exported snapshot names; SET TRANSACTION
// SNAPSHOT takes no parameters, so the name is checked before it is spliced.
var snapshotNamePattern = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// freshStart creates the slot, brings the target to the rows visible in the
// snapshot the slot exports, and returns the position the stream starts
// from. The exported snapshot lives only until the next command on repl, so
// it is read before anything else is sent there.
//
// An empty target gets a bulk import. A target that holds relationships
// (a lost slot, a failover, a forced re-snapshot) is reconciled inside the
// exported snapshot: only the difference is written, and the gateways keep
// answering from it meanwhile, as fresh as the last checkpoint, which is
// still true of it (AppliedReader.Applied).
func (s *Syncer) freshStart(ctx context.Context, repl *pgconn.PgConn, st pgState, temporary bool) (authz.LSN, error) {
	started := time.Now()
	empty, err := s.targetEmpty(ctx)
	if err != nil {
		return 0, err
	}
	version := 0
	if !temporary {
		if err := st.beginSnapshot(ctx, empty); err != nil {
			return 0, err
		}
		if version, err = st.serverVersion(ctx); err != nil {
			return 0, err
		}
	}
	res, err := pglogrepl.ParseCreateReplicationSlot(repl.Exec(ctx, createSlotCommand(st.slot, temporary, version)))
	if err != nil {
		return 0, fmt.Errorf("sync: create replication slot %s: %w", st.slot, classify(err, nil))
	}
	// The replication protocol answers in text, not a pg_lsn column.
	start, err := authz.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("sync: slot consistent point %q: %w", res.ConsistentPoint, err)
	}
	if !snapshotNamePattern.MatchString(res.SnapshotName) {
		return 0, fmt.Errorf("sync: unexpected snapshot name %q", res.SnapshotName)
	}
	rows, err := s.copySnapshot(ctx, res.SnapshotName, empty)
	if err != nil {
		return 0, err
	}
	// A bulk import returns no revision: take one that covers the snapshot,
	// so reads at least as fresh as the sync see all of it.
	head, err := s.target.HeadToken(ctx)
	if err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	s.recordToken(head)
	if !temporary {
		if err := st.checkpoint(ctx, start, s.LatestToken()); err != nil {
			return 0, err
		}
		if err := st.setSnapshotDone(ctx, true); err != nil {
			return 0, err
		}
	}
	s.cfg.Logger.Info("sync: snapshot applied", "slot", st.slot, "rows", rows, "lsn", start.String(),
		"duration", time.Since(started).Round(time.Millisecond))
	return start, nil
}

// failoverSlotVersion is the first PostgreSQL (server_version_num) whose
// logical slots can follow a failover to a physical standby.
const failoverSlotVersion = 170000

// createSlotCommand is the replication command that creates the slot and
// exports its snapshot. A persistent slot on PostgreSQL 17+ is created with
// FAILOVER, so that standbys listed in synchronized_standby_slots keep a
// copy and a promotion does not force a fresh snapshot; version is the
// server's server_version_num (0 for a temporary slot, which never fails
// over).
func createSlotCommand(slot string, temporary bool, version int) string {
	switch {
	case temporary:
		return fmt.Sprintf("CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT", slot)
	case version >= failoverSlotVersion:
		return fmt.Sprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER)", slot)
	default:
		return fmt.Sprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT", slot)
	}
}

// snapshotQueries read the rows the snapshot is made of.
// Every column is cast to text, which is what the stream decodes too
// (pgoutput sends text), so that raw values read the same whatever types an
// application's own tables use.
var snapshotQueries = []struct{ table, sql string }{
	{tableCompanies, `SELECT id::text AS id, parent_id::text AS parent_id FROM companies`},
	{tableMemberships, `SELECT id::text AS id, user_id::text AS user_id, company_id::text AS company_id,
		role::text AS role, status::text AS status FROM company_memberships`},
}

// copySnapshot brings the target to the rows of the exported snapshot: a
// bulk import into an empty target, the fastest path; otherwise a
// reconcile read in the snapshot, which writes only the difference and
// deletes what SpiceDB held beyond it (changes made while no sync ran, or
// writes from elsewhere). It returns the number of rows.
func (s *Syncer) copySnapshot(ctx context.Context, snapshotName string, empty bool) (int64, error) {
	cfg, err := s.src.connConfig()
	if err != nil {
		return 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("sync: snapshot connection: %w", classify(err, authz.ErrUnavailable))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The reconcile compares in a temporary table, which a read-only
	// transaction may not create.
	mode := pgx.ReadOnly
	if !empty {
		mode = pgx.ReadWrite
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: mode})
	if err != nil {
		return 0, fmt.Errorf("sync: snapshot transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only or temp table only
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET TRANSACTION SNAPSHOT '%s'", snapshotName)); err != nil {
		return 0, fmt.Errorf("sync: set transaction snapshot: %w", err)
	}
	var total int64
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM companies) + (SELECT count(*) FROM company_memberships)`).Scan(&total); err != nil {
		return 0, fmt.Errorf("sync: count rows: %w", err)
	}
	if !empty {
		s.cfg.Logger.Info("sync: SpiceDB holds relationships; reconciling it with the snapshot instead of importing", "rows", total)
		if _, err := s.reconcileIn(ctx, tx, noKeepAlive); err != nil {
			return 0, err
		}
		// The reconcile read every row of the snapshot.
		s.metrics.snapshotRows.Add(float64(total))
		return total, nil
	}
	p := newProgress(s.cfg.Logger, total)
	rels, readErr := s.snapshotRelationships(ctx, tx, p)
	n, err := s.target.Import(ctx, rels)
	if err = errors.Join(*readErr, err); err != nil {
		return 0, fmt.Errorf("sync: copy snapshot: %w", err)
	}
	s.metrics.updates.WithLabelValues("import").Add(float64(n))
	s.cfg.Logger.Info("sync: imported into an empty SpiceDB; if its datastore is PostgreSQL, run ANALYZE relation_tuple there now: until autovacuum does, every relationship delete scans the whole table (docs/operations.md)",
		"relationships", n)
	p.done()
	return p.rows, nil
}

// snapshotRelationships yields the relationships of every snapshot row; a
// read error ends the sequence and is left in *readErr.
func (s *Syncer) snapshotRelationships(ctx context.Context, tx pgx.Tx, p *progress) (iter.Seq[authz.Relationship], *error) {
	var readErr error
	seq := func(yield func(authz.Relationship) bool) {
		for _, q := range snapshotQueries {
			if !s.yieldTable(ctx, tx, q.table, q.sql, p, yield, &readErr) {
				return
			}
		}
	}
	return seq, &readErr
}

func (s *Syncer) yieldTable(ctx context.Context, tx pgx.Tx, table, query string, p *progress, yield func(authz.Relationship) bool, readErr *error) bool {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		*readErr = fmt.Errorf("read %s: %w", table, err)
		return false
	}
	defer rows.Close()
	cols := rows.FieldDescriptions()
	// One map for all rows: change and skip are done with a row before the
	// next is read, and a million rows should not cost a million maps.
	r := make(row, len(cols))
	for rows.Next() {
		clear(r)
		// A text value reads the same in either wire format.
		for i, v := range rows.RawValues() {
			if v != nil {
				r[cols[i].Name] = string(v)
			}
		}
		p.add(1)
		s.metrics.snapshotRows.Inc()
		updates, skipped := change(table, nil, r)
		s.skip(ctx, skipped, 0)
		for _, u := range updates {
			if !yield(u.Rel) {
				return false
			}
		}
	}
	if err := rows.Err(); err != nil {
		*readErr = fmt.Errorf("read %s: %w", table, err)
		return false
	}
	return true
}

var errFound = errors.New("found")

// targetEmpty reports whether the target holds no relationship at all.
func (s *Syncer) targetEmpty(ctx context.Context) (bool, error) {
	err := s.target.ReadRelationships(ctx, func(authz.Relationship) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sync: read target: %w", err)
	}
	return true, nil
}

// maxBatch is the most updates the sync sends in one write.
const maxBatch = 1000

// progress logs a long copy's advance at a steady rate.
type progress struct {
	logger      *slog.Logger
	total, rows int64
	started     time.Time
	next        time.Time
}

// progressEvery is how often a long copy reports.
const progressEvery = 5 * time.Second

func newProgress(logger *slog.Logger, total int64) *progress {
	now := time.Now()
	return &progress{logger: logger, total: total, started: now, next: now.Add(progressEvery)}
}

func (p *progress) add(n int64) {
	p.rows += n
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(progressEvery)
		p.report("sync: snapshot progress")
	}
}

func (p *progress) done() { p.report("sync: snapshot copied") }

func (p *progress) report(msg string) {
	elapsed := time.Since(p.started)
	rate := float64(p.rows) / max(elapsed.Seconds(), 1e-9)
	var eta time.Duration
	if rate > 0 && p.total > p.rows {
		eta = time.Duration(float64(p.total-p.rows) / rate * float64(time.Second))
	}
	p.logger.Info(msg, "rows", p.rows, "total", p.total, "rows_per_second", int64(rate),
		"eta", eta.Round(time.Second), "elapsed", elapsed.Round(time.Millisecond))
}
