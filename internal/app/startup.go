package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// DefaultStartupTimeout is how long serve and sync retry what they need
// at start (SpiceDB, Postgres, the key set) before giving up: long enough
// for a dependency that restarts or is still being scheduled, short enough
// that a process that cannot start says so while someone is looking.
const DefaultStartupTimeout = 2 * time.Minute

// Backoff bounds between attempts to start.
const (
	startupRetryMin = 250 * time.Millisecond
	startupRetryMax = 5 * time.Second
)

// startup retries the steps of a process's start until a shared deadline:
// a dependency that is not up yet is waited for, a mistake no retry can
// cure (an error wrapping authz.ErrInvalid) ends the start at once.
type startup struct {
	timeout  time.Duration
	deadline time.Time
	logger   *slog.Logger
}

// newStartup starts the clock: timeout bounds all the steps together, and
// 0 tries each once.
func newStartup(timeout time.Duration, logger *slog.Logger) *startup {
	return &startup{timeout: timeout, deadline: time.Now().Add(timeout), logger: logger}
}

// retryStartup runs step until it succeeds, fails for good, ctx ends or
// the start's deadline would pass before the next attempt.
func retryStartup[T any](ctx context.Context, s *startup, name string, step func(context.Context) (T, error)) (T, error) {
	// Jittered, so that replicas started together do not knock together.
	wait := &backoff.ExponentialBackOff{InitialInterval: startupRetryMin, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: startupRetryMax}
	for attempt := 1; ; attempt++ {
		v, err := step(ctx)
		if err == nil {
			if attempt > 1 {
				s.logger.InfoContext(ctx, "started after retrying", "step", name, "attempts", attempt)
			}
			return v, nil
		}
		if errors.Is(err, authz.ErrInvalid) || ctx.Err() != nil {
			return v, err
		}
		next := wait.NextBackOff()
		if time.Now().Add(next).After(s.deadline) {
			if s.timeout == 0 {
				return v, err
			}
			return v, fmt.Errorf("startup: gave up after --startup-timeout %v: %w", s.timeout, err)
		}
		s.logger.WarnContext(ctx, "cannot start yet; retrying", "step", name, "attempt", attempt,
			"error", err, "retry_in", next.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(next):
		}
	}
}
