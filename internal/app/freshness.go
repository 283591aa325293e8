package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/store"
	membersync "github.com/tenantgate/tenantgate/internal/sync"
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

// appliedPollInterval is how often a remote gateway reads whether the sync
// has applied a position a read waits for. The sync reports a new position
// to its slot at once, so this is most of the wait; each poll is two short
// queries, made only while a read waits.
const appliedPollInterval = 15 * time.Millisecond

// slotFreshness serves LSN consistency tokens when the sync runs in another
// process: it polls the sync's slot and checkpoints until they cover the
// position.
type slotFreshness struct {
	store *store.Store
	slot  string
	every time.Duration
}

// AwaitLSN implements gateway.Freshness.
func (f slotFreshness) AwaitLSN(ctx context.Context, lsn authz.LSN) (string, error) {
	ticker := time.NewTicker(f.every)
	defer ticker.Stop()
	for {
		covered, token, err := f.store.AppliedThrough(ctx, f.slot, lsn)
		if err == nil && covered {
			return token, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return "", fmt.Errorf("%w: sync has not applied lsn %s yet: %w", authz.ErrUnavailable, lsn, err)
			}
			return "", fmt.Errorf("%w: sync has not applied lsn %s yet", authz.ErrUnavailable, lsn)
		case <-ticker.C:
		}
	}
}

// syncerFreshness serves LSN consistency tokens from the sync running in
// this process (embedded SpiceDB), which wakes its waiters as it advances.
type syncerFreshness struct {
	syncer *membersync.Syncer
}

// AwaitLSN implements gateway.Freshness.
func (f syncerFreshness) AwaitLSN(ctx context.Context, lsn authz.LSN) (string, error) {
	return f.syncer.AwaitApplied(ctx, pglogrepl.LSN(lsn))
}
