package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/wal"
)

// walGeometry is the server's WAL page and segment size, read once: a
// gateway asks SyncApplied every few milliseconds while reads wait, and the
// sizes are fixed when the cluster is made.
func (s *Store) walGeometry(ctx context.Context) (wal.Geometry, error) {
	if g := s.geometry.Load(); g != nil {
		return *g, nil
	}
	g, err := wal.ReadGeometry(ctx, s.pool)
	if err != nil {
		return wal.Geometry{}, translate(err)
	}
	s.geometry.Store(&g)
	return g, nil
}

// WALPosition is the server's WAL insert position: past the end of every
// commit that has returned, whoever's connection made it.
func (s *Store) WALPosition(ctx context.Context) (authz.LSN, error) {
	lsn, err := wal.InsertPosition(ctx, s.pool)
	return lsn, translate(err)
}

// ChangeSample is what a gateway watches to tell whether the mirror lags:
// a count of the changes committed to the mirrored tables, and the WAL
// position, read after it.
type ChangeSample struct {
	// Changes moves whenever companies or company_memberships change. It
	// adds two counters: the change clock of migration 5, which a deferred
	// trigger ticks just before each commit and every session sees at once;
	// and PostgreSQL's table statistics (rows inserted, updated, deleted
	// and live), which reach other sessions up to ten seconds after a
	// commit but also catch what the clock cannot (a COMMIT PREPARED). Only
	// its movement counts; it may move for other reasons (ANALYZE
	// estimates, a statistics reset), which only makes a gateway more
	// careful.
	Changes int64
	// Position is the WAL insert position, read after Changes.
	Position authz.LSN
}

// SampleChanges reads a ChangeSample.
func (s *Store) SampleChanges(ctx context.Context) (ChangeSample, error) {
	var c ChangeSample
	// Two statements, so that the position is read after the counters;
	// within one statement PostgreSQL promises no order.
	batch := &pgx.Batch{}
	batch.Queue(`select (select last_value from tenantgate.change_clock) +
		(select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del + n_live_tup), 0)::bigint
		 from pg_stat_user_tables where relid in ('companies'::regclass, 'company_memberships'::regclass))`).
		QueryRow(func(row pgx.Row) error { return row.Scan(&c.Changes) })
	batch.Queue(`select pg_current_wal_insert_lsn()`).QueryRow(func(row pgx.Row) error { return row.Scan(&c.Position) })
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return ChangeSample{}, fmt.Errorf("sample changes: %w", translate(err))
	}
	return c, nil
}

// Applied says how far the sync of one slot has carried Postgres into
// SpiceDB, as read by SyncApplied.
type Applied struct {
	SyncProgress
	// through is the position up to which every transaction is in SpiceDB,
	// zero while none is known to be.
	through  authz.LSN
	geometry wal.Geometry
}

// Covers reports whether every transaction that ended at or before lsn (a
// position read with pg_current_wal_insert_lsn() after a commit) is
// applied.
func (a Applied) Covers(lsn authz.LSN) bool {
	return a.through > 0 && a.geometry.RecordEnd(lsn) <= a.through
}

// SyncApplied reads how far the sync on slot has applied: it is how a
// gateway in another process than the sync serves read-your-writes, and
// knows it has caught up.
//
// A position is applied once the slot's initial snapshot is complete and
// the slot's confirmed_flush_lsn or one of its checkpoints is at or past
// it. The sync confirms a position to the slot only after the checkpoint
// covering every change before it is committed (between transactions of no
// synced table it confirms without one: there was nothing to apply), so a
// confirmed position means the newest checkpoint's token covers every write
// up to it. For that inference to hold the slot is read first and the
// checkpoints in a later statement, whose snapshot then includes the
// checkpoint committed before the confirmation that statement one saw.
func (s *Store) SyncApplied(ctx context.Context, slot string) (Applied, error) {
	geometry, err := s.walGeometry(ctx)
	if err != nil {
		return Applied{}, fmt.Errorf("sync applied: %w", err)
	}
	// No slot, or one without a confirmed position, is zero.
	var slotAt authz.LSN
	err = s.pool.QueryRow(ctx, `select coalesce(confirmed_flush_lsn, '0/0') from pg_replication_slots
		where slot_name = $1 and database = current_database()`, slot).Scan(&slotAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Applied{}, fmt.Errorf("sync applied: read slot %s: %w", slot, translate(err))
	}
	p, err := s.SyncProgress(ctx, slot)
	if err != nil {
		return Applied{}, fmt.Errorf("sync applied: %w", err)
	}
	a := Applied{SyncProgress: p, geometry: geometry}
	// A slot being made anew reports its start as confirmed before the
	// snapshot behind it is in SpiceDB; and without a token no read could
	// be made fresh enough, so neither counts as applied.
	if p.SnapshotDone && p.Token != "" {
		a.through = max(slotAt, p.Checkpoint)
	}
	return a, nil
}
