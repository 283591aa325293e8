package mirror

import (
	"context"
	"iter"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// TestCatchUp: the server's WAL end is confirmed only between transactions
// with nothing pending, and never moves the confirmed position back.
func TestCatchUp(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ss            streamState
		want          bool
		wantConfirmed authz.LSN
	}{
		{"idle, the server moved on", streamState{confirmed: 100, committed: 100, serverEnd: 200}, true, 200},
		{"inside a transaction", streamState{confirmed: 100, committed: 100, serverEnd: 200, inTx: true}, false, 100},
		{"changes pending", streamState{confirmed: 100, committed: 100, serverEnd: 200,
			pending: []authz.Update{{Op: authz.OpTouch}}}, false, 100},
		{"a transaction received but not confirmed", streamState{confirmed: 100, committed: 150, serverEnd: 200}, false, 100},
		{"the server reported nothing newer", streamState{confirmed: 200, committed: 200, serverEnd: 150}, false, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := tc.ss
			if got := ss.catchUp(); got != tc.want || ss.confirmed != tc.wantConfirmed {
				t.Errorf("catchUp = %v, confirmed %s; want %v, %s", got, ss.confirmed, tc.want, tc.wantConfirmed)
			}
			if ss.committed < ss.confirmed {
				t.Errorf("committed %s behind confirmed %s", ss.committed, ss.confirmed)
			}
		})
	}
}

// recordingTarget keeps the writes it is given; the stream's batching is
// judged by them, without a SpiceDB (the suites in sync_test.go run it
// against the real one).
type recordingTarget struct {
	writes [][]authz.Update
}

func (r *recordingTarget) Write(_ context.Context, updates []authz.Update) (string, error) {
	r.writes = append(r.writes, slices.Clone(updates))
	return "token", nil
}

func (r *recordingTarget) Import(context.Context, iter.Seq[authz.Relationship]) (uint64, error) {
	panic("not used by flush")
}

func (r *recordingTarget) DeleteRelations(context.Context, []string) (string, error) {
	panic("not used by flush")
}

func (r *recordingTarget) ReadRelationships(context.Context, func(authz.Relationship) error) error {
	panic("not used by flush")
}

func (r *recordingTarget) HeadToken(context.Context) (string, error) { panic("not used by flush") }

// TestFlush: a flush writes what is pending only between transactions, and
// then confirms the end of the last whole transaction, publishing it to
// AwaitApplied and readiness.
func TestFlush(t *testing.T) {
	update := authz.Update{Op: authz.OpTouch, Rel: authz.Relationship{Resource: "acme", Relation: "owner", SubjectType: authz.TypeUser, SubjectID: "ann"}}
	newSyncer := func(t *testing.T) (*Syncer, *recordingTarget) {
		t.Helper()
		target := &recordingTarget{}
		s, err := New(Config{DatabaseURL: "postgres://unused", Registry: prometheus.NewRegistry()}, target)
		if err != nil {
			t.Fatal(err)
		}
		return s, target
	}

	t.Run("inside a transaction nothing is written", func(t *testing.T) {
		s, target := newSyncer(t)
		ss := &streamState{inTx: true, pending: []authz.Update{update}, committed: 50, readyAt: 10}
		if err := s.flush(t.Context(), pgState{}, ss); err != nil {
			t.Fatal(err)
		}
		if len(target.writes) != 0 || len(ss.pending) != 1 || ss.confirmed != 0 || s.Applied() != 0 {
			t.Errorf("wrote %v, pending %d, confirmed %s, applied %s: want nothing done", target.writes, len(ss.pending), ss.confirmed, s.Applied())
		}
	})

	t.Run("between transactions the batch goes and the end is confirmed", func(t *testing.T) {
		s, target := newSyncer(t)
		ss := &streamState{pending: []authz.Update{update, update}, committed: 50, readyAt: 40}
		if err := s.flush(t.Context(), pgState{}, ss); err != nil {
			t.Fatal(err)
		}
		if len(target.writes) != 1 || len(target.writes[0]) != 2 || len(ss.pending) != 0 {
			t.Errorf("writes %v, pending %d: want one write of both updates", target.writes, len(ss.pending))
		}
		if ss.confirmed != 50 || s.Applied() != 50 || !s.Covers(50) || s.Covers(51) {
			t.Errorf("confirmed %s, applied %s: want 50", ss.confirmed, s.Applied())
		}
		if !s.Ready() {
			t.Error("not ready once the position it started behind is confirmed")
		}
		if s.LatestToken() != "token" {
			t.Errorf("latest token %q, want the write's", s.LatestToken())
		}
	})

	t.Run("a later keepalive is confirmed with the flush", func(t *testing.T) {
		s, _ := newSyncer(t)
		ss := &streamState{pending: []authz.Update{update}, committed: 50, serverEnd: 80, readyAt: 70}
		if err := s.flush(t.Context(), pgState{}, ss); err != nil {
			t.Fatal(err)
		}
		if ss.confirmed != 80 || s.Applied() != 80 || !s.Ready() {
			t.Errorf("confirmed %s, applied %s, ready %v: want the keepalive's 80 and ready", ss.confirmed, s.Applied(), s.Ready())
		}
	})
}
