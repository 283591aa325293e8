package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tenantgate/tenantgate/internal/store"
)

// syncFollower tracks the progress of a sync running in another process
// (remote SpiceDB), so the gateway reads at least as fresh as the last change
// the sync applied and is ready only once its snapshot is in.
type syncFollower struct {
	progress atomic.Pointer[store.SyncProgress]
}

// follow polls the sync's checkpoints every interval until ctx ends.
func (f *syncFollower) follow(ctx context.Context, st *store.Store, slot string, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failing := false
	for {
		qctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		p, err := st.SyncProgress(qctx, slot)
		cancel()
		switch {
		case err == nil:
			f.progress.Store(&p)
			failing = false
		case ctx.Err() == nil && !failing:
			// Keep the last known floor: an older floor only makes reads
			// less fresh than they could be, never wrong.
			logger.Warn("cannot read the sync's progress", "error", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// token is the freshness floor for reads without a consistency token.
func (f *syncFollower) token() string {
	if p := f.progress.Load(); p != nil {
		return p.Token
	}
	return ""
}

// ready reports whether the sync's initial snapshot is in SpiceDB.
func (f *syncFollower) ready() bool {
	p := f.progress.Load()
	return p != nil && p.SnapshotDone
}
