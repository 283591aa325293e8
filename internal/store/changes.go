package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// WALPosition is the server's WAL insert position, past the end of every
// commit that has returned whoever's connection made it, with the timeline
// it is on: what a write answers as its consistency token. The timeline is
// the first 8 hex digits of the name of the WAL file the position is in,
// which needs no privilege to read, unlike pg_control_checkpoint(); one
// statement reads both, and docs/operations.md gives applications the
// same query.
func (s *Store) WALPosition(ctx context.Context) (authz.Position, error) {
	var pos authz.Position
	err := s.pool.QueryRow(ctx, `select lsn, ('x' || left(pg_walfile_name(lsn), 8))::bit(32)::bigint
		from (select pg_current_wal_insert_lsn() as lsn) as current`).Scan(&pos.LSN, &pos.Timeline)
	if err != nil {
		return authz.Position{}, fmt.Errorf("read wal position: %w", translate(err))
	}
	return pos, nil
}

// SampleChanges reads what the staleness bound watches (mirror.Staleness):
// a count of the changes committed to the mirrored tables, and then the
// WAL insert position.
//
// The count moves whenever companies or company_memberships change. It
// adds two counters: the change clock of migration 5, which a deferred
// trigger ticks just before each commit and every session sees at once; and
// PostgreSQL's table statistics (rows inserted, updated, deleted and live),
// which reach other sessions up to ten seconds after a commit but also
// catch what the clock cannot (a COMMIT PREPARED). Only its movement
// counts; it may move for other reasons (ANALYZE estimates, a statistics
// reset), which only makes a gateway more careful.
func (s *Store) SampleChanges(ctx context.Context) (changes int64, position authz.LSN, err error) {
	// Two statements, so that the position is read after the counters;
	// within one statement PostgreSQL promises no order.
	batch := &pgx.Batch{}
	batch.Queue(`select (select last_value from tenantgate.change_clock) +
		(select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del + n_live_tup), 0)::bigint
		 from pg_stat_user_tables where relid in ('companies'::regclass, 'company_memberships'::regclass))`).
		QueryRow(func(row pgx.Row) error { return row.Scan(&changes) })
	batch.Queue(`select pg_current_wal_insert_lsn()`).QueryRow(func(row pgx.Row) error { return row.Scan(&position) })
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return 0, 0, fmt.Errorf("sample changes: %w", translate(err))
	}
	return changes, position, nil
}
