package loadbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tenantgate/tenantgate/internal/authz"
)

const (
	// lagUser holds the memberships the lag run adds and removes. No
	// generated user has this ID, so every other answer stays as the
	// ground truth has it.
	lagUser = "bench-lag@example.com"
	// lagDrain bounds the wait for the last changes to show once the
	// writer is done.
	lagDrain = time.Minute
	// lateBy is how far behind its schedule a commit may start before it
	// counts as late: the writer, not the system, fell behind.
	lateBy = 10 * time.Millisecond
	// lagPollEvery spaces the polls: back to back they would take a good
	// part of a small machine's cores from what they measure, for a
	// resolution far finer than the lag goal needs.
	lagPollEvery = 2 * time.Millisecond
)

// lagChange is one committed change the poller waits to see.
type lagChange struct {
	company   string
	insert    bool // else a delete
	committed time.Time
}

// lagRun is the state writer and poller share. The lag user only ever
// holds viewer on leaf companies, so one change moves exactly one answer:
// no other held company is above or below it.
type lagRun struct {
	mu      sync.Mutex
	pending []lagChange // committed, not seen yet, in commit order
	held    []string    // inserts seen: may be deleted now
	free    []string    // leaves the lag user has no row on
	wake    chan struct{}
	stats   lagStats
}

// lagStats is what a lag run measured.
type lagStats struct {
	lags []time.Duration // sorted once the run is over
	// changes were committed, late of them started over lateBy behind
	// their schedule, in writing.
	changes, late int
	writing       time.Duration
}

// measureLag commits rate changes per second for duration, each adding
// or removing a membership of lagUser, and polls the gateway with bulk
// checks (as the service, about lagUser) until each shows; a change's lag
// runs from its commit's return to the arrival of the first answer that
// reflects it. The rows it added are removed at the end.
func measureLag(ctx context.Context, db *pgxpool.Pool, gw *apiClient, serviceToken string, leaves []string, rate int, duration time.Duration) (lagStats, error) {
	l := &lagRun{free: slices.Clone(leaves), wake: make(chan struct{}, 1)}
	written := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(written)
		return l.write(gctx, db, rate, duration)
	})
	g.Go(func() error { return l.poll(gctx, gw, serviceToken, written) })
	err := g.Wait()
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	if _, cleanupErr := db.Exec(cleanupCtx, `DELETE FROM company_memberships WHERE user_id = $1`, lagUser); err == nil && cleanupErr != nil {
		err = fmt.Errorf("lag: remove its rows: %w", cleanupErr)
	}
	if err != nil {
		return lagStats{}, err
	}
	slices.Sort(l.stats.lags)
	return l.stats, nil
}

// write commits the changes on a fixed schedule (an open loop: change i is
// due at i/rate whatever the earlier ones took), alternating inserts and
// deletes of inserts already seen.
func (l *lagRun) write(ctx context.Context, db *pgxpool.Pool, rate int, duration time.Duration) error {
	interval := time.Second / time.Duration(rate)
	n := int(duration / interval)
	pace := time.NewTimer(0)
	defer pace.Stop()
	began := time.Now()
	for i := range n {
		if wait := time.Until(began.Add(time.Duration(i) * interval)); wait > 0 {
			pace.Reset(wait)
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-pace.C:
			}
		} else if wait < -lateBy {
			l.stats.late++
		}
		change, ok := l.next(i%2 == 1)
		if !ok {
			continue // every leaf is held or in flight: skip a beat
		}
		if err := commitChange(ctx, db, change); err != nil {
			return err
		}
		change.committed = time.Now()
		l.mu.Lock()
		l.pending = append(l.pending, change)
		l.stats.changes++
		l.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.stats.writing = time.Since(began)
	return nil
}

// next picks the next change: a delete of the oldest insert seen when
// preferDelete and there is one, else an insert on a free leaf.
func (l *lagRun) next(preferDelete bool) (lagChange, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case (preferDelete || len(l.free) == 0) && len(l.held) > 0:
		c := l.held[0]
		l.held = l.held[1:]
		return lagChange{company: c}, true
	case len(l.free) > 0:
		c := l.free[0]
		l.free = l.free[1:]
		return lagChange{company: c, insert: true}, true
	}
	return lagChange{}, false
}

func commitChange(ctx context.Context, db *pgxpool.Pool, c lagChange) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	sql := `DELETE FROM company_memberships WHERE user_id = $1 AND company_id = $2`
	if c.insert {
		sql = `INSERT INTO company_memberships (user_id, company_id, role) VALUES ($1, $2, 'viewer')`
	}
	if _, err := db.Exec(ctx, sql, lagUser, c.company); err != nil {
		return fmt.Errorf("lag: commit: %w", err)
	}
	return nil
}

// poll asks about every pending change in one bulk call after another,
// at most one per lagPollEvery, until the writer is done and every change
// has shown.
func (l *lagRun) poll(ctx context.Context, gw *apiClient, serviceToken string, written <-chan struct{}) error {
	var drainBy time.Time
	every := time.NewTicker(lagPollEvery)
	defer every.Stop()
	for {
		batch := l.batch()
		if len(batch) == 0 {
			select {
			case <-written:
				// The writer adds before it closes written, so a batch
				// still empty now is the end.
				if len(l.batch()) == 0 {
					return nil
				}
			case <-l.wake:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			continue
		}
		select {
		case <-written:
			if drainBy.IsZero() {
				drainBy = time.Now().Add(lagDrain)
			}
		default:
		}
		if !drainBy.IsZero() && time.Now().After(drainBy) {
			return fmt.Errorf("lag: %d changes not visible %s after the last commit, the oldest %s", len(batch), lagDrain, batch[0])
		}
		select {
		case <-every.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		checks := make([]Check, len(batch))
		for i, c := range batch {
			checks[i] = Check{User: lagUser, Permission: authz.PermRead, Company: c.company, Want: c.insert}
		}
		allowed, err := gw.bulk(ctx, serviceToken, lagUser, checks)
		if err == nil && len(allowed) != len(checks) {
			err = fmt.Errorf("%d answers to %d checks", len(allowed), len(checks))
		}
		if err != nil {
			return fmt.Errorf("lag: poll: %w", err)
		}
		l.seen(batch, allowed, time.Now())
	}
}

func (c lagChange) String() string {
	op := "removal"
	if c.insert {
		op = "insert"
	}
	return fmt.Sprintf("%s of %s's role on %s, committed %s ago", op, lagUser, c.company, time.Since(c.committed).Round(time.Millisecond))
}

// batch is the oldest pending changes, at most one bulk call's worth.
func (l *lagRun) batch() []lagChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pending[:min(len(l.pending), maxBulkChecks)])
}

// seen records the changes of batch that answers reflect. batch is a
// prefix of pending: only this goroutine removes from it.
func (l *lagRun) seen(batch []lagChange, allowed []bool, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var still []lagChange
	for i, c := range batch {
		if allowed[i] != c.insert {
			still = append(still, c)
			continue
		}
		l.stats.lags = append(l.stats.lags, at.Sub(c.committed))
		if c.insert {
			l.held = append(l.held, c.company)
		} else {
			l.free = append(l.free, c.company)
		}
	}
	l.pending = append(still, l.pending[len(batch):]...)
}
