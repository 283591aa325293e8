package sync

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Page header sizes of WAL on 64-bit servers (SizeOfXLogShortPHD and
// SizeOfXLogLongPHD); the long one starts every segment.
const (
	walShortPageHeader = 24
	walLongPageHeader  = 40
)

// walGeometry is the server's WAL page and segment size, needed to read an
// insert position as a record end (see recordEnd).
type walGeometry struct {
	page, segment uint64
}

// recordEnd turns an LSN read with pg_current_wal_insert_lsn() into the
// smallest position a record ending there could have. That function reports
// a position just past the page header when the last record ended exactly at
// a page boundary, while the replication stream (and every commit end) names
// the boundary itself: without this, a waiter for such a position would wait
// for the next WAL record after it, which on an idle server can take 15 s or
// more. No record ends inside a page header, so taking the header off never
// lets a waiter pass before its write is applied. An unknown geometry (zero)
// changes nothing: waiting longer is safe.
func (g walGeometry) recordEnd(lsn pglogrepl.LSN) pglogrepl.LSN {
	pos := uint64(lsn)
	switch {
	case g.segment > 0 && pos%g.segment == walLongPageHeader:
		return lsn - walLongPageHeader
	case g.page > 0 && pos%g.page == walShortPageHeader:
		return lsn - walShortPageHeader
	}
	return lsn
}

// AwaitApplied returns once the sync has applied every transaction that
// ended at or before lsn, with a ZedToken at least as fresh as those writes;
// a read at least as fresh as the token reflects them. It waits without
// polling: every advance of the applied position wakes the waiters. When
// ctx ends first, the error wraps authz.ErrUnavailable.
//
// lsn may be any position read after the write committed: the commit's end,
// pg_current_wal_lsn() or pg_current_wal_insert_lsn(). WAL written by others
// after the commit only delays the answer until the stream has passed it,
// which the sync reports at once (see streamState.catchUp).
func (s *Syncer) AwaitApplied(ctx context.Context, lsn pglogrepl.LSN) (token string, err error) {
	for {
		s.mu.Lock()
		if s.applied >= s.wal.recordEnd(lsn) {
			token = s.token
			s.mu.Unlock()
			if token == "" {
				// Nothing written since a resume: the target's newest
				// revision covers what earlier runs applied.
				if token, err = s.target.HeadToken(ctx); err != nil {
					return "", fmt.Errorf("sync: %w", err)
				}
			}
			return token, nil
		}
		if s.appliedWake == nil {
			s.appliedWake = make(chan struct{})
		}
		wake := s.appliedWake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return "", fmt.Errorf("sync: %w: sync has not applied lsn %s yet (applied through %s)", authz.ErrUnavailable, lsn, s.Applied())
		}
	}
}

// Applied is the position up to which every transaction is in the target.
func (s *Syncer) Applied() pglogrepl.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// setApplied raises the applied position and wakes every waiter; it never
// lowers it. The position outlives a failed run: what was applied stays in
// the target, and a fresh snapshot only brings it further.
func (s *Syncer) setApplied(lsn pglogrepl.LSN) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lsn <= s.applied {
		return
	}
	s.applied = lsn
	// The channel exists only while someone waits, so an advance with no
	// waiter allocates nothing.
	if s.appliedWake != nil {
		close(s.appliedWake)
		s.appliedWake = nil
	}
}

func (s *Syncer) setWALGeometry(g walGeometry) {
	s.mu.Lock()
	s.wal = g
	s.mu.Unlock()
}
