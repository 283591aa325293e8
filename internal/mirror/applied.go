package mirror

import (
	"context"
	"fmt"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/wal"
)

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
func (s *Syncer) AwaitApplied(ctx context.Context, lsn authz.LSN) (token string, err error) {
	for {
		s.mu.Lock()
		if s.covers(lsn) {
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

// Covers reports, without waiting, whether every transaction that ended at
// or before lsn is applied.
func (s *Syncer) Covers(lsn authz.LSN) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.covers(lsn)
}

// covers is Covers for a caller that holds s.mu.
func (s *Syncer) covers(lsn authz.LSN) bool {
	return s.applied >= s.wal.RecordEnd(lsn)
}

// Applied is the position up to which every transaction is in the target.
func (s *Syncer) Applied() authz.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// setApplied raises the applied position and wakes every waiter; it never
// lowers it. The position outlives a failed run: what was applied stays in
// the target, and a fresh snapshot only brings it further.
func (s *Syncer) setApplied(lsn authz.LSN) {
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

func (s *Syncer) setWALGeometry(g wal.Geometry) {
	s.mu.Lock()
	s.wal = g
	s.mu.Unlock()
}

func (s *Syncer) geometry() wal.Geometry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wal
}
