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
	// reloadMax bounds the wait between loads when Watch fails after
	// every one (a datastore without commit timestamps).
	reloadMax = time.Minute
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
// reloading when the Watch cannot resume. While it is loading, behind, or
// its Watch is down, reads go to SpiceDB.
func (f *follower) run(ctx context.Context) {
	delay := retryMin
	for ctx.Err() == nil {
		if err := f.load(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("index: load failed; reads go to SpiceDB", "err", err, "retry_in", delay)
			delay = pause(ctx, delay, retryMax)
			continue
		}
		if f.follow(ctx) {
			delay = retryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// Loads that Watch cannot follow would repeat a full export every
		// few seconds; they slow down to one a minute instead.
		f.index.Unload()
		f.log.Error("index: SpiceDB's Watch fails right after a load, so the index is off and every read goes to SpiceDB; "+
			"on a Postgres datastore Watch needs track_commit_timestamp=on", "retry_in", delay)
		delay = pause(ctx, delay, reloadMax)
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

// follow applies the Watch until ctx ends or the index must load again,
// and reports whether the Watch delivered anything or ran long enough to
// count as working.
func (f *follower) follow(ctx context.Context) (worked bool) {
	failures, delay := 0, retryMin
	for {
		after := f.index.Token()
		if after == "" {
			return true // an update the index could not hold unloaded it
		}
		started := time.Now()
		delivered := false
		err := f.source.Watch(ctx, after, func(updates []authz.Update, through string) error {
			delivered = true
			return f.index.Apply(updates, through)
		})
		if ctx.Err() != nil {
			return true
		}
		f.index.Stalled()
		f.metrics.watchRestarts.Inc()
		if delivered || time.Since(started) >= watchHealthy {
			worked, failures, delay = true, 0, retryMin
			f.log.Debug("index: watch ended; resuming", "err", err)
			continue
		}
		if failures++; failures >= watchFailures {
			f.log.Warn("index: watch keeps failing; loading again", "err", err)
			return worked
		}
		f.log.Warn("index: watch failed; resuming", "err", err, "retry_in", delay)
		delay = pause(ctx, delay, retryMax)
	}
}

// pause waits about d (jittered, so replicas do not retry in step) or
// until ctx ends, and returns the next, doubled, delay up to most.
func pause(ctx context.Context, d, most time.Duration) time.Duration {
	t := time.NewTimer(d/2 + rand.N(d/2+1))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return min(2*d, most)
}
