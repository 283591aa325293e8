package sync

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
)

const connectTimeout = 10 * time.Second

// connectReplication opens a logical replication connection.
func connectReplication(ctx context.Context, databaseURL string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("sync: %w: database url: %w", authz.ErrInvalid, err)
	}
	cfg.RuntimeParams["replication"] = "database"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sync: replication connection: %w: %w", authz.ErrUnavailable, err)
	}
	return conn, nil
}

// snapshotNamePattern is the form of exported snapshot names; SET TRANSACTION
// SNAPSHOT takes no parameters, so the name is checked before it is spliced.
var snapshotNamePattern = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// snapshot creates the slot, copies every row visible in the snapshot the
// slot exports into the target, removes what the target holds beyond that,
// and returns the position the stream must start from. The exported snapshot
// lives only until the next command on repl, so it is read before anything
// else is sent there.
func (s *Syncer) snapshot(ctx context.Context, repl *pgconn.PgConn, slot string) (pglogrepl.LSN, error) {
	started := time.Now()
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary:      true,
		SnapshotAction: "EXPORT_SNAPSHOT",
		Mode:           pglogrepl.LogicalReplication,
	})
	if err != nil {
		return 0, fmt.Errorf("sync: create replication slot (is wal_level=logical?): %w", err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("sync: slot consistent point %q: %w", res.ConsistentPoint, err)
	}
	if !snapshotNamePattern.MatchString(res.SnapshotName) {
		return 0, fmt.Errorf("sync: unexpected snapshot name %q", res.SnapshotName)
	}
	want, rows, err := s.copySnapshot(ctx, res.SnapshotName)
	if err != nil {
		return 0, err
	}
	pruned, err := s.prune(ctx, want)
	if err != nil {
		return 0, err
	}
	s.cfg.Logger.Info("sync: snapshot applied", "slot", slot, "rows", rows, "relationships", len(want),
		"pruned", pruned, "lsn", start.String(), "duration", time.Since(started).Round(time.Millisecond))
	return start, nil
}

// snapshotQueries read the rows the snapshot is made of; parents first only
// for readability of the log, order does not matter to SpiceDB.
var snapshotQueries = []struct{ table, sql string }{
	{tableCompanies, `SELECT id, parent_id FROM companies`},
	{tableMemberships, `SELECT id, user_id, company_id, role, status FROM company_memberships`},
}

// copySnapshot writes the relationships of every row in the exported
// snapshot and returns the set it wrote.
func (s *Syncer) copySnapshot(ctx context.Context, snapshotName string) (map[authz.Relationship]struct{}, int, error) {
	conn, err := pgx.Connect(ctx, s.cfg.DatabaseURL)
	if err != nil {
		return nil, 0, fmt.Errorf("sync: snapshot connection: %w: %w", authz.ErrUnavailable, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, fmt.Errorf("sync: snapshot transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only; nothing to undo
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET TRANSACTION SNAPSHOT '%s'", snapshotName)); err != nil {
		return nil, 0, fmt.Errorf("sync: set transaction snapshot: %w", err)
	}
	want := map[authz.Relationship]struct{}{}
	total := 0
	for _, q := range snapshotQueries {
		n, err := s.copyTable(ctx, tx, q.table, q.sql, want)
		if err != nil {
			return nil, 0, err
		}
		total += n
	}
	return want, total, nil
}

func (s *Syncer) copyTable(ctx context.Context, tx pgx.Tx, table, query string, want map[authz.Relationship]struct{}) (int, error) {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("sync: read %s: %w", table, err)
	}
	defer rows.Close()
	cols := rows.FieldDescriptions()
	var batch []authz.Update
	n := 0
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return n, fmt.Errorf("sync: read %s: %w", table, err)
		}
		r := row{}
		for i, v := range vals {
			if v != nil {
				r[cols[i].Name] = fmt.Sprint(v)
			}
		}
		n++
		s.metrics.snapshotRows.Inc()
		updates, skipped := change(table, nil, r)
		s.skip(skipped)
		for _, u := range updates {
			want[u.Rel] = struct{}{}
		}
		batch = append(batch, updates...)
		if len(batch) >= maxBatch {
			if err := s.apply(ctx, batch); err != nil {
				return n, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("sync: read %s: %w", table, err)
	}
	return n, s.apply(ctx, batch)
}

// maxBatch is the most updates the sync sends in one write.
const maxBatch = 1000

// prune deletes what the target holds but the snapshot does not derive:
// changes made while no sync was running, or writes from elsewhere. Without
// it a persistent SpiceDB would keep access that Postgres revoked.
func (s *Syncer) prune(ctx context.Context, want map[authz.Relationship]struct{}) (int, error) {
	var extra []authz.Update
	err := s.target.ReadRelationships(ctx, func(rel authz.Relationship) error {
		if _, ok := want[rel]; !ok {
			extra = append(extra, authz.Update{Op: authz.OpDelete, Rel: rel})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sync: read target for prune: %w", err)
	}
	for batch := range slices.Chunk(extra, maxBatch) {
		if err := s.apply(ctx, batch); err != nil {
			return 0, err
		}
	}
	s.metrics.pruned.Add(float64(len(extra)))
	return len(extra), nil
}
