package mirror

import (
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// This machine runs PostgreSQL 15 only, so the FAILOVER form is checked by
// its text; the 15 form is what every test against a real server creates.
func TestCreateSlotCommand(t *testing.T) {
	tests := []struct {
		name      string
		temporary bool
		version   int
		want      string
	}{
		{"temporary", true, 0, "CREATE_REPLICATION_SLOT s TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"},
		{"temporary never fails over", true, 170000, "CREATE_REPLICATION_SLOT s TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"},
		{"postgres 15", false, 150008, "CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT"},
		{"postgres 16", false, 160004, "CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT"},
		{"postgres 17", false, 170000, "CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER)"},
		{"postgres 18", false, 180001, "CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := createSlotCommand("s", tt.temporary, tt.version); got != tt.want {
				t.Errorf("createSlotCommand = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppliedThrough(t *testing.T) {
	tests := []struct {
		name   string
		p      Progress
		slotAt authz.LSN
		want   authz.LSN
	}{
		{"no token: nothing", Progress{SnapshotDone: true, Checkpoint: 10}, 20, 0},
		{"first snapshot under way", Progress{}, 20, 0},
		{"done: slot ahead of checkpoint", Progress{SnapshotDone: true, Token: "t", Checkpoint: 10}, 20, 20},
		{"done: checkpoint ahead of slot", Progress{SnapshotDone: true, Token: "t", Checkpoint: 30}, 20, 30},
		// The new slot's start is not applied before its snapshot is:
		// only the old slot's checkpoint counts.
		{"re-snapshot in place", Progress{Token: "t", Checkpoint: 10}, 20, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appliedThrough(tt.p, tt.slotAt); got != tt.want {
				t.Errorf("appliedThrough = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestResumeReconcileDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		last time.Time
		want bool
	}{
		{"never reconciled", time.Time{}, true},
		{"just now", now.Add(-time.Second), false},
		{"just inside", now.Add(-15*time.Minute + time.Second), false},
		{"at the interval", now.Add(-15 * time.Minute), true},
		{"long ago", now.Add(-time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resumeReconcileDue(tt.last, now, 15*time.Minute); got != tt.want {
				t.Errorf("resumeReconcileDue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLastRunReadyFor(t *testing.T) {
	s := &Syncer{}
	s.setReady(false)
	if got := s.LastRunReadyFor(); got != 0 {
		t.Fatalf("a run never ready: LastRunReadyFor = %v, want 0", got)
	}
	s.setReady(true)
	began := time.Now()
	s.setReady(true) // a second caught-up report keeps the first time
	for time.Since(began) < time.Millisecond {
		// A measurable time ready.
	}
	s.setReady(false)
	if got := s.LastRunReadyFor(); got < time.Millisecond {
		t.Errorf("a run ready for over 1ms: LastRunReadyFor = %v", got)
	}
	s.setReady(false)
	if got := s.LastRunReadyFor(); got != 0 {
		t.Errorf("the next run, never ready: LastRunReadyFor = %v, want 0", got)
	}
}
