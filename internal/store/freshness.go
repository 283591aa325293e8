package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// walGeometry is the server's WAL page and segment size, read once: a
// gateway asks SyncApplied every few milliseconds while reads wait, and the
// sizes are fixed when the cluster is made.
func (s *Store) walGeometry(ctx context.Context) (authz.WALGeometry, error) {
	if g := s.geometry.Load(); g != nil {
		return *g, nil
	}
	var page, segment int64
	err := s.pool.QueryRow(ctx, `select current_setting('wal_block_size')::bigint,
			pg_size_bytes(current_setting('wal_segment_size'))`).Scan(&page, &segment)
	if err != nil {
		return authz.WALGeometry{}, fmt.Errorf("read wal geometry: %w", translate(err))
	}
	g := authz.WALGeometry{Page: uint64(page), Segment: uint64(segment)}
	s.geometry.Store(&g)
	return g, nil
}

// WALPosition is the server's WAL insert position: past the end of every
// commit that has returned, whoever's connection made it.
func (s *Store) WALPosition(ctx context.Context) (authz.LSN, error) {
	var pos string
	if err := s.pool.QueryRow(ctx, `select pg_current_wal_insert_lsn()::text`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("read wal position: %w", translate(err))
	}
	return authz.ParseLSN(pos)
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
	var pos string
	// Two statements, so that the position is read after the counters;
	// within one statement PostgreSQL promises no order.
	batch := &pgx.Batch{}
	batch.Queue(`select (select last_value from tenantgate.change_clock) +
		(select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del + n_live_tup), 0)::bigint
		 from pg_stat_user_tables where relid in ('companies'::regclass, 'company_memberships'::regclass))`).
		QueryRow(func(row pgx.Row) error { return row.Scan(&c.Changes) })
	batch.Queue(`select pg_current_wal_insert_lsn()::text`).QueryRow(func(row pgx.Row) error { return row.Scan(&pos) })
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return ChangeSample{}, fmt.Errorf("sample changes: %w", translate(err))
	}
	var err error
	if c.Position, err = authz.ParseLSN(pos); err != nil {
		return ChangeSample{}, fmt.Errorf("sample changes: %w", err)
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
	geometry authz.WALGeometry
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
	var confirmed *string
	err = s.pool.QueryRow(ctx, `select confirmed_flush_lsn::text from pg_replication_slots
		where slot_name = $1 and database = current_database()`, slot).Scan(&confirmed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Applied{}, fmt.Errorf("sync applied: read slot %s: %w", slot, translate(err))
	}
	var slotAt authz.LSN
	if confirmed != nil {
		if slotAt, err = authz.ParseLSN(*confirmed); err != nil {
			return Applied{}, fmt.Errorf("sync applied: slot %s: %w", slot, err)
		}
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
