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
// the sync applied, and is ready only once the sync has applied every change
// committed before the gateway started: a gateway that started while the
// sync was behind would otherwise answer from an index older than changes
// (revocations, say) made before it came up.
type syncFollower struct {
	progress atomic.Pointer[store.SyncProgress]
	caughtUp atomic.Bool
	// started is the WAL position when the gateway started, read by the
	// first poll that reaches Postgres; only follow's goroutine uses it.
	started *authz.LSN
}

// follow polls the sync's checkpoints every interval until ctx ends.
func (f *syncFollower) follow(ctx context.Context, st *store.Store, slot string, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failing := false
	for {
		qctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		err := f.poll(qctx, st, slot, logger)
		cancel()
		switch {
		case err == nil:
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

// poll reads the sync's progress once and, until the sync has caught up
// with the gateway's start, whether it has.
func (f *syncFollower) poll(ctx context.Context, st *store.Store, slot string, logger *slog.Logger) error {
	if f.started == nil {
		pos, err := st.WALPosition(ctx)
		if err != nil {
			return err
		}
		f.started = &pos
	}
	p, err := st.SyncProgress(ctx, slot)
	if err != nil {
		return err
	}
	f.progress.Store(&p)
	if f.caughtUp.Load() {
		return nil
	}
	covered, _, err := st.AppliedThrough(ctx, slot, *f.started)
	if err != nil {
		return err
	}
	if covered {
		f.caughtUp.Store(true)
		logger.Info("the sync has applied every change made before this gateway started; ready", "lsn", f.started.String())
	}
	return nil
}

// token is the freshness floor for reads without a consistency token.
func (f *syncFollower) token() string {
	if p := f.progress.Load(); p != nil {
		return p.Token
	}
	return ""
}

// ready reports whether the sync's initial snapshot is in SpiceDB and the
// sync has caught up with the gateway's start.
func (f *syncFollower) ready() bool {
	p := f.progress.Load()
	return p != nil && p.SnapshotDone && f.caughtUp.Load()
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
