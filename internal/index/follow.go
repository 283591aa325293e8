package index

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// errNotLoaded is an update that arrived with no graph to apply it to.
var errNotLoaded = errors.New("index: not loaded")

// Source is SpiceDB as the index reads it: every relationship at one
// revision, then every change after a revision, in order.
type Source interface {
	Export(ctx context.Context, fn func(authz.Relationship) error) (token string, err error)
	Watch(ctx context.Context, after string, fn func(updates []authz.Update, through string) error) error
}

// Backoff and give-up points of Follow.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// watchHealthy is how long a Watch must have run for its end to count
	// as a normal restart (a SpiceDB rollout, a proxy's idle timeout)
	// rather than a failure.
	watchHealthy = 10 * time.Second
	// watchFailures is how many failed Watch calls in a row make Follow
	// load everything again: the revision it resumes from may have left
	// SpiceDB's garbage-collection window.
	watchFailures = 3
)

// follower keeps an Index up to date from a Source.
type follower struct {
	index   *Index
	source  Source
	log     *slog.Logger
	metrics *metrics
}

// run loads the index and follows the Source's changes until ctx ends,
// reloading when the Watch cannot resume. While it is loading or behind,
// reads fall back to SpiceDB.
func (f *follower) run(ctx context.Context) {
	delay := retryMin
	for ctx.Err() == nil {
		if err := f.load(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("index: load failed; reads go to SpiceDB", "err", err, "retry_in", delay)
			delay = pause(ctx, delay)
			continue
		}
		delay = retryMin
		f.follow(ctx)
	}
}

func (f *follower) load(ctx context.Context) error {
	started := time.Now()
	g := newGraph()
	token, err := f.source.Export(ctx, func(rel authz.Relationship) error {
		return g.Apply(authz.Update{Op: authz.OpTouch, Rel: rel})
	})
	if err != nil {
		return err
	}
	took := time.Since(started)
	f.index.Load(g, token, took)
	f.metrics.loads.Inc()
	f.log.Info("index: loaded", "relationships", g.relationships, "took", took)
	return nil
}

// follow applies the Watch until ctx ends or the index must load again.
func (f *follower) follow(ctx context.Context) {
	failures, delay := 0, retryMin
	for {
		after := f.index.Token()
		if after == "" {
			return // an update the index could not hold unloaded it
		}
		started := time.Now()
		err := f.source.Watch(ctx, after, f.index.Apply)
		if ctx.Err() != nil {
			return
		}
		f.metrics.watchRestarts.Inc()
		if time.Since(started) >= watchHealthy {
			failures, delay = 0, retryMin
			f.log.Debug("index: watch ended; resuming", "err", err)
			continue
		}
		if failures++; failures >= watchFailures {
			f.log.Warn("index: watch keeps failing; loading again", "err", err)
			return
		}
		f.log.Warn("index: watch failed; resuming", "err", err, "retry_in", delay)
		delay = pause(ctx, delay)
	}
}

// pause waits about d (jittered, so replicas do not retry in step) or
// until ctx ends, and returns the next, doubled, delay.
func pause(ctx context.Context, d time.Duration) time.Duration {
	t := time.NewTimer(d/2 + rand.N(d/2+1))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return min(2*d, retryMax)
}
