package app

import (
	"context"
	"log/slog"

	"github.com/tenantgate/tenantgate/internal/store"
)

// SyncFollower lets the external tests drive a remote gateway's view of the
// sync one poll at a time.
type SyncFollower struct{ f syncFollower }

func (s *SyncFollower) Poll(ctx context.Context, st *store.Store, slot string, logger *slog.Logger) error {
	return s.f.poll(ctx, st, slot, logger)
}

func (s *SyncFollower) Ready() bool { return s.f.ready() }
