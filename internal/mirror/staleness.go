package mirror

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// The floor makes every read reflect what the sync has applied,
// but nothing makes the sync apply: a sync that died, or a stream that
// stalls, would leave the gateway answering from a frozen mirror, and a
// membership revoked in Postgres allowed for as long as that lasts. The
// staleness bound closes that gap. A gateway samples, every poll, a count
// of changes to the mirrored tables and then the WAL position; a change is
// applied once the sync covers the position of the poll after the one
// that first saw it. (The change clock ticks just before a commit record
// is written, so the position read with it may precede that record; a
// poll later it cannot.)
// When a change stays unapplied for longer than --max-staleness, reads
// answer 503 and /readyz fails until the sync catches up. A database
// without changes to the mirrored tables is never stale, however long it is
// idle and whatever else writes WAL.

// maxPendingChanges bounds the changes a gateway remembers while the sync
// is away (one per poll that saw a change). Past it, the second oldest is
// dropped: the oldest still dates the staleness, and a later one's
// position covers the dropped one's, so nothing is forgotten, only judged
// applied a little later.
const maxPendingChanges = 1 << 16

// ChangeSampler reads a count of the changes committed to the mirrored
// tables (it only has to move with every change) and then the WAL insert
// position; the store implements it, from its change clock.
type ChangeSampler interface {
	SampleChanges(ctx context.Context) (changes int64, position authz.LSN, err error)
}

// ReadCoverage reads how far the sync has applied, once per poll, as a test
// of positions: Applied.Covers for a sync in another process, Syncer.Covers
// for one in this process.
type ReadCoverage func(ctx context.Context) (covers func(authz.LSN) bool, err error)

// changeSample is one sample, with the time of the poll before it:
// a change first seen in this sample was made after that. Its Position is
// replaced by the next poll's, which the commit is surely before; until
// then it is not settled and cannot be covered.
type changeSample struct {
	changes  int64
	position authz.LSN
	after    time.Time
	settled  bool
}

// Staleness tracks whether the mirror lags Postgres by more than max.
type Staleness struct {
	max time.Duration

	mu sync.Mutex
	// pending are the samples whose change count moved and that the sync
	// has not covered yet, oldest first.
	pending []changeSample
	// applied is the change count of the newest covered sample, known once
	// the sync covered one.
	applied      int64
	knownApplied bool
	// lastSample is when the last sample was read (zero before the first).
	lastSample time.Time

	stale atomic.Bool
}

// NewStaleness tracks the bound limit; 0 disables it.
func NewStaleness(limit time.Duration) *Staleness {
	return &Staleness{max: limit}
}

// Stale reports whether reads must not be answered from the mirror.
func (s *Staleness) Stale() bool {
	return s.max > 0 && s.stale.Load()
}

// observe records a sample taken at now, given what the sync covers, and
// reports whether the mirror is now stale.
func (s *Staleness) observe(now time.Time, changes int64, position authz.LSN, covers func(authz.LSN) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	after := s.lastSample
	if after.IsZero() {
		after = now
	}
	s.lastSample = now
	last, known := s.applied, s.knownApplied
	if n := len(s.pending); n > 0 {
		last, known = s.pending[n-1].changes, true
		if !s.pending[n-1].settled {
			s.pending[n-1].position, s.pending[n-1].settled = position, true
		}
	}
	if !known || changes != last {
		s.pending = append(s.pending, changeSample{changes: changes, position: position, after: after})
		if len(s.pending) > maxPendingChanges {
			s.pending = append(s.pending[:1], s.pending[2:]...)
		}
	}
	// Positions only grow, so the covered samples are a prefix.
	covered := 0
	for covered < len(s.pending) && s.pending[covered].settled && covers(s.pending[covered].position) {
		covered++
	}
	if covered > 0 {
		s.applied, s.knownApplied = s.pending[covered-1].changes, true
		s.pending = s.pending[covered:]
	}
	stale := len(s.pending) > 0 && now.Sub(s.pending[0].after) > s.max
	s.stale.Store(stale)
	return stale
}

// unknown records a poll that could not sample: past the bound since the
// last sample, nothing tells that the mirror is fresh, which is stale.
func (s *Staleness) unknown(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	stale := s.stale.Load() || (!s.lastSample.IsZero() && now.Sub(s.lastSample) > s.max)
	s.stale.Store(stale)
	return stale
}

// Watch samples every interval until ctx ends.
func (s *Staleness) Watch(ctx context.Context, sampler ChangeSampler, coverage ReadCoverage, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	wasStale := false
	for {
		stale, err := s.poll(ctx, sampler, coverage, max(interval, time.Second))
		switch {
		case stale && !wasStale && err != nil && ctx.Err() == nil:
			logger.Warn("cannot tell whether the sync keeps up; reads answer 503 until it can be told", "max_staleness", s.max, "error", err)
		case stale && !wasStale:
			logger.Warn("the sync has not applied changes made more than the staleness bound ago; reads answer 503 until it catches up", "max_staleness", s.max)
		case !stale && wasStale:
			logger.Info("the sync has caught up; reads are answered again")
		}
		wasStale = stale
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// poll takes one sample and checks it against the sync's progress, read
// after it, so that a position the sync covers by then counts as covered.
func (s *Staleness) poll(ctx context.Context, sampler ChangeSampler, coverage ReadCoverage, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	changes, position, err := sampler.SampleChanges(ctx)
	var covers func(authz.LSN) bool
	if err == nil {
		covers, err = coverage(ctx)
	}
	if err != nil {
		return s.unknown(time.Now()), err
	}
	return s.observe(time.Now(), changes, position, covers), nil
}
