package mirror

import (
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestStalenessBound(t *testing.T) {
	const bound = 10 * time.Second
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// poll is one sample: seconds after start, WAL position, change count,
	// how far the sync has applied, and whether the mirror is stale then.
	type poll struct {
		at      int
		pos     authz.LSN
		changes int64
		applied authz.LSN
		stale   bool
	}
	for _, tc := range []struct {
		name  string
		polls []poll
	}{
		// The sync covers the first two polls, then goes away.
		{"an idle database is never stale, whatever else writes WAL", []poll{
			{0, 100, 5, 100, false},
			{1, 110, 5, 110, false},
			{5, 200, 5, 110, false},
			{30, 900, 5, 110, false},
			{3600, 5000, 5, 110, false},
		}},
		{"a change the sync applies in time", []poll{
			{0, 100, 5, 100, false},
			{1, 150, 6, 150, false},
			{2, 160, 6, 160, false},
			{60, 170, 6, 160, false},
		}},
		// The clock ticks just before the commit record: a change is
		// applied only once the position of the poll after it is covered.
		{"a change is dated by the poll after it", []poll{
			{0, 100, 5, 100, false},
			{1, 150, 5, 150, false},
			{2, 160, 6, 160, false},
			{11, 170, 6, 169, false},
			{13, 180, 6, 169, true},
			{14, 180, 6, 170, false},
		}},
		// Dated from the poll before the one that saw it, since the change
		// may have been made just after that.
		{"a change left unapplied is stale once the bound passed since the poll before it", []poll{
			{0, 100, 5, 100, false},
			{1, 150, 6, 100, false},
			{10, 150, 6, 100, false},
			{11, 150, 6, 100, true},
			{13, 160, 7, 140, true},
		}},
		{"catching up ends it", []poll{
			{0, 100, 5, 100, false},
			{1, 150, 6, 100, false},
			{20, 170, 7, 100, true},
			{21, 170, 7, 160, true},
			{22, 170, 7, 170, false},
		}},
		{"a sync that never applied anything is stale after the bound", []poll{
			{0, 100, 5, 0, false},
			{10, 100, 5, 0, false},
			{11, 100, 5, 0, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStaleness(bound)
			for i, p := range tc.polls {
				got := s.observe(start.Add(time.Duration(p.at)*time.Second), p.changes, p.pos,
					func(lsn authz.LSN) bool { return lsn <= p.applied })
				if got != p.stale || s.Stale() != p.stale {
					t.Fatalf("poll %d (%+v): stale = %v (Stale() %v), want %v", i, p, got, s.Stale(), p.stale)
				}
			}
		})
	}

	t.Run("a poll that cannot sample is stale once the bound passed since the last sample", func(t *testing.T) {
		s := NewStaleness(bound)
		s.observe(start, 1, 1, func(authz.LSN) bool { return true })
		if s.unknown(start.Add(bound)) {
			t.Error("stale at the bound")
		}
		if !s.unknown(start.Add(bound + time.Second)) {
			t.Error("not stale past the bound")
		}
		if s.observe(start.Add(bound+2*time.Second), 1, 2, func(authz.LSN) bool { return true }) {
			t.Error("still stale once a sample shows nothing unapplied")
		}
	})

	t.Run("0 disables it", func(t *testing.T) {
		s := NewStaleness(0)
		s.observe(start, 1, 1, func(authz.LSN) bool { return false })
		s.observe(start.Add(time.Hour), 2, 2, func(authz.LSN) bool { return false })
		if s.Stale() {
			t.Error("stale with the bound disabled")
		}
	})

	t.Run("a long outage keeps its oldest change", func(t *testing.T) {
		s := NewStaleness(bound)
		never := func(authz.LSN) bool { return false }
		for i := range maxPendingChanges + 10 {
			s.observe(start.Add(time.Duration(i)*time.Millisecond), int64(i), authz.LSN(i+1), never)
		}
		if len(s.pending) > maxPendingChanges || !s.pending[0].after.Equal(start) {
			t.Errorf("%d pending, oldest after %v; want at most %d, the first", len(s.pending), s.pending[0].after, maxPendingChanges)
		}
	})
}
