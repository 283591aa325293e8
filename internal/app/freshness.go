package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/store"
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
	if f.caughtUp.Load() {
		p, err := st.SyncProgress(ctx, slot)
		if err != nil {
			return err
		}
		f.progress.Store(&p)
		return nil
	}
	a, err := st.SyncApplied(ctx, slot)
	if err != nil {
		return err
	}
	f.progress.Store(&a.SyncProgress)
	if a.Covers(*f.started) {
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

// floor is the WAL position reads without a token are at least as fresh
// as: every transaction that ended at or before it.
func (f *syncFollower) floor() authz.LSN {
	if p := f.progress.Load(); p != nil {
		return p.Checkpoint
	}
	return 0
}

// ready reports whether the sync's initial snapshot is in SpiceDB and the
// sync has caught up with the gateway's start.
func (f *syncFollower) ready() bool {
	p := f.progress.Load()
	return p != nil && p.SnapshotDone && f.caughtUp.Load()
}

// appliedPollInterval is how often a remote gateway reads whether the sync
// has applied the positions reads wait for. The sync reports a new position
// to its slot at once, so this is most of the wait; each poll is two short
// queries, made only while a read waits, however many do.
const appliedPollInterval = 15 * time.Millisecond

// slotFreshness serves LSN consistency tokens when the sync runs in another
// process. One poller per gateway reads how far the sync's slot and
// checkpoints have got, every `every` while any read waits, and releases
// the reads it covers: a poll per read would put a query load on Postgres
// that grows with the number of waiting reads, just when the sync is
// behind.
type slotFreshness struct {
	store *store.Store
	slot  string
	every time.Duration
	polls prometheus.Counter
	// wake tells run that a first waiter arrived.
	wake chan struct{}

	mu      sync.Mutex
	waiters map[*lsnWaiter]struct{}
	// lastErr is the error of the last poll, for waiters that give up.
	lastErr error
}

var (
	_ gateway.Freshness = (*slotFreshness)(nil)
	_ gateway.Freshness = syncerFreshness{}
	_ gateway.Freshness = (*pastPositions)(nil)
)

type lsnWaiter struct {
	lsn  authz.LSN
	done chan string
}

func newSlotFreshness(st *store.Store, slot string, every time.Duration, reg prometheus.Registerer) (*slotFreshness, error) {
	polls := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tenantgate_gateway_applied_polls_total",
		Help: "Reads of how far the sync has applied, made while requests wait for a consistency token; a high rate means requests often wait, because the sync is behind or clients pass tokens of writes they just made.",
	})
	if err := reg.Register(polls); err != nil {
		return nil, fmt.Errorf("freshness metrics: %w", err)
	}
	return &slotFreshness{store: st, slot: slot, every: every, polls: polls,
		wake: make(chan struct{}, 1), waiters: map[*lsnWaiter]struct{}{}}, nil
}

// AwaitLSN implements gateway.Freshness.
func (f *slotFreshness) AwaitLSN(ctx context.Context, lsn authz.LSN) (string, error) {
	w := &lsnWaiter{lsn: lsn, done: make(chan string, 1)}
	f.mu.Lock()
	f.waiters[w] = struct{}{}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	select {
	case token := <-w.done:
		return token, nil
	case <-ctx.Done():
		f.mu.Lock()
		delete(f.waiters, w)
		err := f.lastErr
		f.mu.Unlock()
		// Released in the meantime: the answer is there.
		select {
		case token := <-w.done:
			return token, nil
		default:
		}
		if err != nil {
			return "", fmt.Errorf("%w: sync has not applied lsn %s yet: %w", authz.ErrUnavailable, lsn, err)
		}
		return "", fmt.Errorf("%w: sync has not applied lsn %s yet", authz.ErrUnavailable, lsn)
	}
}

// run polls while reads wait, until ctx ends.
func (f *slotFreshness) run(ctx context.Context) {
	ticker := time.NewTicker(f.every)
	defer ticker.Stop()
	for {
		if f.idle() {
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
			}
		}
		f.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (f *slotFreshness) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters) == 0
}

// poll reads the sync's progress once and releases every waiter it covers.
func (f *slotFreshness) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(f.every, time.Second))
	defer cancel()
	f.polls.Inc()
	applied, err := f.store.SyncApplied(ctx, f.slot)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = err
	if err != nil {
		return
	}
	for w := range f.waiters {
		if applied.Covers(w.lsn) {
			w.done <- applied.Token
			delete(f.waiters, w)
		}
	}
}

// syncerFreshness serves LSN consistency tokens from the sync running in
// this process (embedded SpiceDB), which wakes its waiters as it advances.
type syncerFreshness struct {
	syncer *mirror.Syncer
}

// AwaitLSN implements gateway.Freshness.
func (f syncerFreshness) AwaitLSN(ctx context.Context, lsn authz.LSN) (string, error) {
	return f.syncer.AwaitApplied(ctx, lsn)
}

// pastPositions refuses a consistency token that names a WAL position the
// database has not reached: no write of this database answered with it, and
// waiting for the sync to apply it would hold the request for the whole
// --consistency-wait and keep the gateway polling. Positions at or below
// one already read pass without a query.
type pastPositions struct {
	gateway.Freshness
	store *store.Store
	// reached is the highest WAL position read so far.
	reached atomic.Uint64
}

// AwaitLSN implements gateway.Freshness.
func (f *pastPositions) AwaitLSN(ctx context.Context, lsn authz.LSN) (string, error) {
	if uint64(lsn) > f.reached.Load() {
		pos, err := f.store.WALPosition(ctx)
		if err != nil {
			return "", err
		}
		// A racing reader may store an older position: that costs a
		// query later, never a wrong answer.
		f.reached.Store(uint64(pos))
		if lsn > pos {
			return "", fmt.Errorf("%w: %s, the database is at %s", gateway.ErrPositionAhead, lsn, pos)
		}
	}
	return f.Freshness.AwaitLSN(ctx, lsn)
}
