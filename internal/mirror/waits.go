package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// A gateway in another process than the sync (remote SpiceDB) follows the
// sync through its bookkeeping (AppliedReader): Follower keeps its floor and
// readiness, SlotWaits serves its waits. With embedded SpiceDB the Syncer
// itself serves both (Syncer.LatestToken, Syncer.Applied,
// Syncer.AwaitApplied).

// Follower tracks the applied position of a sync running in another
// process, so the gateway's floor is the last change the sync applied, and
// the gateway is ready only once the sync has applied every change
// committed before the gateway started: a gateway that started while the
// sync was behind would otherwise answer from an index older than changes
// (revocations, say) made before it came up.
type Follower struct {
	reader   *AppliedReader
	progress atomic.Pointer[Progress]
	caughtUp atomic.Bool
	// started is the WAL position when the gateway started, read by the
	// first poll that reaches Postgres; only one Poll at a time uses it.
	started *authz.LSN
}

// NewFollower follows the sync that reader reads.
func NewFollower(reader *AppliedReader) *Follower {
	return &Follower{reader: reader}
}

// Follow polls the sync's checkpoints every interval until ctx ends.
func (f *Follower) Follow(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failing := false
	for {
		qctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		err := f.Poll(qctx, logger)
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

// Poll reads the sync's progress once and, until the sync has caught up
// with the gateway's start, whether it has.
func (f *Follower) Poll(ctx context.Context, logger *slog.Logger) error {
	if f.started == nil {
		pos, err := f.reader.WALPosition(ctx)
		if err != nil {
			return err
		}
		f.started = &pos
	}
	if f.caughtUp.Load() {
		p, err := f.reader.Progress(ctx)
		if err != nil {
			return err
		}
		f.progress.Store(&p)
		return nil
	}
	a, err := f.reader.Applied(ctx)
	if err != nil {
		return err
	}
	f.progress.Store(&a.Progress)
	if a.Covers(*f.started) {
		f.caughtUp.Store(true)
		logger.Info("the sync has applied every change made before this gateway started; ready", "lsn", f.started.String())
	}
	return nil
}

// Floor is the floor token: the token reads without a consistency token
// are at least as fresh as.
func (f *Follower) Floor() string {
	if p := f.progress.Load(); p != nil {
		return p.Token
	}
	return ""
}

// FloorLSN is the WAL position of the floor: every transaction that ended
// at or before it is reflected by reads without a token.
func (f *Follower) FloorLSN() authz.LSN {
	if p := f.progress.Load(); p != nil {
		return p.Checkpoint
	}
	return 0
}

// Ready reports whether the sync has caught up with the gateway's start
// and SpiceDB still holds what a checkpoint covers. A re-snapshot into a
// SpiceDB that holds relationships keeps the checkpoints, and the gateway
// ready (the staleness bound judges the changes that wait meanwhile); one
// into an empty SpiceDB drops them, and the gateway is not ready until the
// import is in.
func (f *Follower) Ready() bool {
	p := f.progress.Load()
	return p != nil && p.Token != "" && f.caughtUp.Load()
}

// WaitPollInterval is how often a remote gateway reads whether the sync
// has applied the positions reads wait for. The sync reports a new position
// to its slot at once, so this is most of the wait; each poll is two short
// queries, made only while a read waits, however many do.
const WaitPollInterval = 15 * time.Millisecond

// SlotWaits serves waits when the sync runs in another process. One poller
// per gateway reads how far the sync's slot and checkpoints have got,
// every `every` while any read waits, and releases the reads it covers: a
// poll per read would put a query load on Postgres that grows with the
// number of waiting reads, just when the sync is behind.
type SlotWaits struct {
	reader *AppliedReader
	every  time.Duration
	polls  prometheus.Counter
	// wake tells Run that a first waiter arrived.
	wake chan struct{}

	mu      sync.Mutex
	waiters map[*waiter]struct{}
	// lastErr is the error of the last poll, for waiters that give up.
	lastErr error
}

type waiter struct {
	lsn  authz.LSN
	done chan string
}

// NewSlotWaits serves waits from reader, polling every `every` once Run
// runs; it registers its poll counter with reg.
func NewSlotWaits(reader *AppliedReader, every time.Duration, reg prometheus.Registerer) (*SlotWaits, error) {
	polls := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tenantgate_gateway_applied_polls_total",
		Help: "Reads of how far the sync has applied, made while requests wait for a consistency token; a high rate means requests often wait, because the sync is behind or clients pass tokens of writes they just made.",
	})
	if err := reg.Register(polls); err != nil {
		return nil, fmt.Errorf("wait metrics: %w", err)
	}
	return &SlotWaits{reader: reader, every: every, polls: polls,
		wake: make(chan struct{}, 1), waiters: map[*waiter]struct{}{}}, nil
}

// AwaitApplied returns once a poll finds every transaction that ended at
// or before lsn applied, with a token covering them. When ctx ends first,
// the error wraps authz.ErrUnavailable.
func (f *SlotWaits) AwaitApplied(ctx context.Context, lsn authz.LSN) (string, error) {
	w := &waiter{lsn: lsn, done: make(chan string, 1)}
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

// Run polls while reads wait, until ctx ends.
func (f *SlotWaits) Run(ctx context.Context) {
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

func (f *SlotWaits) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters) == 0
}

// poll reads the sync's progress once and releases every waiter it covers.
func (f *SlotWaits) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(f.every, time.Second))
	defer cancel()
	f.polls.Inc()
	applied, err := f.reader.Applied(ctx)
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
