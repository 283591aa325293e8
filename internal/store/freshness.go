package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// walGeometry is the server's WAL page and segment size, read once: a
// waiting read asks AppliedThrough every few milliseconds, and the sizes
// are fixed when the cluster is made.
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

// AppliedThrough reports whether the sync on slot has carried every
// transaction that ended at or before lsn into
// SpiceDB, and the ZedToken a read must be at least as fresh as to see them:
// that of the slot's newest checkpoint. It is how a gateway in another
// process than the sync serves read-your-writes.
//
// Covered means the slot's initial snapshot is complete, and the slot's
// confirmed_flush_lsn or one of its checkpoints is at or past lsn. The sync
// confirms a position to the slot only after the checkpoint covering every
// change before it is committed (between transactions of no synced table it
// confirms without one: there was nothing to apply), so a confirmed position
// at or past lsn means the newest checkpoint's token covers every write up
// to lsn. For that inference to hold the slot is read first and the
// checkpoints in a later statement, whose snapshot then includes the
// checkpoint committed before the confirmation that statement one saw.
func (s *Store) AppliedThrough(ctx context.Context, slot string, lsn authz.LSN) (covered bool, token string, err error) {
	geometry, err := s.walGeometry(ctx)
	if err != nil {
		return false, "", fmt.Errorf("applied through: %w", err)
	}
	want := geometry.RecordEnd(lsn)
	var confirmed *string
	err = s.pool.QueryRow(ctx, `select confirmed_flush_lsn::text from pg_replication_slots
		where slot_name = $1 and database = current_database()`, slot).Scan(&confirmed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, "", fmt.Errorf("applied through: read slot %s: %w", slot, translate(err))
	}
	slotCovered := false
	if confirmed != nil {
		pos, err := authz.ParseLSN(*confirmed)
		if err != nil {
			return false, "", fmt.Errorf("applied through: slot %s: %w", slot, err)
		}
		slotCovered = pos >= want
	}
	p, checkpointCovered, err := s.progress(ctx, slot, want)
	if err != nil {
		return false, "", fmt.Errorf("applied through: %w", err)
	}
	// A slot being made anew reports its start as confirmed before the
	// snapshot behind it is in SpiceDB; and without a token no read could
	// be made fresh enough, so neither counts as covered.
	if !p.SnapshotDone || p.Token == "" || !(slotCovered || checkpointCovered) {
		return false, p.Token, nil
	}
	return true, p.Token, nil
}
