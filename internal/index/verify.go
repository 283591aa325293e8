package index

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Verification is background work with a bound, so shadow mode never slows
// or queues the answers it samples.
const (
	verifyWorkers = 2
	verifyQueue   = 1024
	verifyTimeout = 10 * time.Second
)

// A verification re-asks SpiceDB what the index answered, at the same
// revision, and describes the difference ("" when they agree).
type verification func(ctx context.Context) (mismatch string, err error)

// verifier runs a fraction of verifications, dropping (and counting) what
// does not fit its queue.
type verifier struct {
	fraction float64
	jobs     chan verification
	metrics  *metrics
	log      *slog.Logger
}

func newVerifier(fraction float64, m *metrics, logger *slog.Logger) *verifier {
	return &verifier{fraction: fraction, jobs: make(chan verification, verifyQueue), metrics: m, log: logger}
}

func (v *verifier) sample(job verification) {
	if v.fraction == 0 || rand.Float64() >= v.fraction {
		return
	}
	select {
	case v.jobs <- job:
	default:
		v.metrics.verifications.WithLabelValues("skipped").Inc()
	}
}

func (v *verifier) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range verifyWorkers {
		wg.Go(func() {
			for {
				select {
				case job := <-v.jobs:
					v.verify(ctx, job)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
}

func (v *verifier) verify(ctx context.Context, job verification) {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	mismatch, err := job(ctx)
	switch {
	case err != nil:
		v.metrics.verifications.WithLabelValues("error").Inc()
		v.log.Debug("index: verification failed", "err", err)
	case mismatch != "":
		v.metrics.verifications.WithLabelValues("mismatch").Inc()
		v.log.Error("index: answer differs from SpiceDB's at the same revision", "mismatch", mismatch)
	default:
		v.metrics.verifications.WithLabelValues("match").Inc()
	}
}
