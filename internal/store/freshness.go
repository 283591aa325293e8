package store

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// lsnPattern is the text form of a pg_lsn, as pg_current_wal_lsn() prints it.
var lsnPattern = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

// parseLSN reads the text form of a WAL position.
func parseLSN(s string) (uint64, error) {
	if !lsnPattern.MatchString(s) {
		return 0, fmt.Errorf("%w: %q is not a WAL position like 0/16B3748", authz.ErrInvalid, s)
	}
	hi, lo, _ := strings.Cut(s, "/")
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: lsn %q: %w", authz.ErrInvalid, s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: lsn %q: %w", authz.ErrInvalid, s, err)
	}
	return h<<32 | l, nil
}

func formatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn))
}

// Page header sizes of WAL on 64-bit servers (SizeOfXLogShortPHD and
// SizeOfXLogLongPHD); the long one starts every segment.
const (
	walShortPageHeader = 24
	walLongPageHeader  = 40
)

// recordEnd turns a position read with pg_current_wal_insert_lsn() into the
// smallest record end it can stand for. That function answers just past the
// page header when the last record ended on a page boundary, while a slot's
// confirmed position and the sync's checkpoints name the boundary itself;
// no record ends inside a header, so taking it off never passes a write that
// is not applied. The sync's Syncer.AwaitApplied does the same.
func recordEnd(lsn, page, segment uint64) uint64 {
	switch {
	case segment > 0 && lsn%segment == walLongPageHeader:
		return lsn - walLongPageHeader
	case page > 0 && lsn%page == walShortPageHeader:
		return lsn - walShortPageHeader
	}
	return lsn
}

// AppliedThrough reports whether the sync on slot has carried every
// transaction that ended at or before lsn (a pg_lsn in text form) into
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
//
// A malformed lsn is an authz.ErrInvalid.
func (s *Store) AppliedThrough(ctx context.Context, slot string, lsn string) (covered bool, token string, err error) {
	want, err := parseLSN(lsn)
	if err != nil {
		return false, "", fmt.Errorf("applied through: %w", err)
	}
	var (
		confirmed     *string
		page, segment int64
	)
	err = s.pool.QueryRow(ctx, `select
			(select confirmed_flush_lsn::text from pg_replication_slots
			  where slot_name = $1 and database = current_database()),
			current_setting('wal_block_size')::bigint,
			pg_size_bytes(current_setting('wal_segment_size'))`, slot).
		Scan(&confirmed, &page, &segment)
	if err != nil {
		return false, "", fmt.Errorf("applied through: read slot %s: %w", slot, translate(err))
	}
	want = recordEnd(want, uint64(page), uint64(segment))
	slotCovered := false
	if confirmed != nil {
		pos, err := parseLSN(*confirmed)
		if err != nil {
			return false, "", fmt.Errorf("applied through: slot %s: %w", slot, err)
		}
		slotCovered = pos >= want
	}
	var snapshotDone, checkpointCovered bool
	err = s.pool.QueryRow(ctx, `select
			coalesce((select snapshot_done from tenantgate.sync_state where slot = $1), false),
			exists (select from tenantgate.sync_checkpoints where slot = $1 and lsn >= $2::pg_lsn),
			coalesce((select zed_token from tenantgate.sync_checkpoints where slot = $1 order by lsn desc limit 1), '')`,
		slot, formatLSN(want)).Scan(&snapshotDone, &checkpointCovered, &token)
	if err != nil {
		return false, "", fmt.Errorf("applied through: read checkpoints of %s: %w", slot, translate(err))
	}
	// A slot being made anew reports its start as confirmed before the
	// snapshot behind it is in SpiceDB; and without a token no read could
	// be made fresh enough, so neither counts as covered.
	if !snapshotDone || token == "" || !(slotCovered || checkpointCovered) {
		return false, token, nil
	}
	return true, token, nil
}
