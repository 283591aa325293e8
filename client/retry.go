package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// RetryPolicy makes the reads of a client (Check, CheckBulk, Permissions,
// the listings) try again after a 503 (the gateway shed the request, or a
// backend is down) or a 429 (the caller's rate limit), once the answer's
// Retry-After has passed. Writes are never retried: a 503 that came after
// a write's deadline may follow its commit. No other answer is retried: a
// 403 or a 400 would only be given again. Zero fields take the defaults.
//
// Retries are paid from a budget that every client derived from one New
// shares (a token bucket): each read adds Ratio of a retry to it, each
// retry takes one, and time adds MinPerSecond a second; it holds at most
// ten. However hard the gateway refuses, retries add at most Ratio to the
// calls it sees, plus the floor: a client does not turn an overloaded
// gateway's refusals into more load.
type RetryPolicy struct {
	// MaxAttempts bounds the tries of one call, the first included
	// (default 3).
	MaxAttempts int
	// MaxWait is the longest wait before a retry (default 5 s): an answer
	// whose Retry-After asks for longer is returned, not waited for.
	MaxWait time.Duration
	// Ratio is the retries the budget gains per read (default 0.1).
	Ratio float64
	// MinPerSecond is the retries the budget gains a second whatever the
	// reads (default 1), so that a client that reads rarely can retry.
	MinPerSecond float64
}

const (
	defaultMaxAttempts  = 3
	defaultMaxWait      = 5 * time.Second
	defaultRetryRatio   = 0.1
	defaultMinPerSecond = 1
	// maxRetryBalance bounds the retries a budget saves up while the
	// gateway answers: the burst of retries when it starts refusing.
	maxRetryBalance = 10
	// firstBackoff is the wait before the first retry of an answer that
	// named no Retry-After (a proxy's 503); it doubles with each retry.
	firstBackoff = 100 * time.Millisecond
)

// WithRetries makes the client retry its reads as p says; without it no
// call is retried. The budget is shared by the clients that As derives
// from this one. The client's timeout (WithTimeout) bounds a call and its
// retries together.
func WithRetries(p RetryPolicy) Option {
	return func(c *Client) {
		if p.MaxAttempts == 0 {
			p.MaxAttempts = defaultMaxAttempts
		}
		if p.MaxWait == 0 {
			p.MaxWait = defaultMaxWait
		}
		if p.Ratio == 0 {
			p.Ratio = defaultRetryRatio
		}
		if p.MinPerSecond == 0 {
			p.MinPerSecond = defaultMinPerSecond
		}
		c.retry = &retrier{policy: p, budget: newRetryBudget(p.Ratio, p.MinPerSecond, time.Now())}
	}
}

func (p RetryPolicy) validate() error {
	if p.MaxAttempts < 1 || p.MaxWait < 0 || p.Ratio < 0 || p.MinPerSecond < 0 {
		return errors.New("retry policy: attempts must be positive; wait, ratio and rate must not be negative")
	}
	return nil
}

// retrier is a client's retry policy and its budget.
type retrier struct {
	policy RetryPolicy
	budget *retryBudget
}

// retryableAnswer reports the answers a retry may cure: 503 and 429.
func retryableAnswer(err error) (*Error, bool) {
	e, ok := errors.AsType[*Error](err)
	return e, ok && (e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests)
}

// next decides whether attempt, which failed with err, is tried again, and
// after how long: only for a 503 or 429, within the attempts, a wait the
// policy and ctx's deadline allow, and the budget.
func (r *retrier) next(ctx context.Context, attempt int, err error) (time.Duration, bool) {
	e, ok := retryableAnswer(err)
	if !ok || attempt >= r.policy.MaxAttempts {
		return 0, false
	}
	wait, ok := r.policy.wait(attempt, e.RetryAfter, rand.Float64())
	if !ok {
		return 0, false
	}
	// A retry that cannot be answered before the caller's deadline would
	// only spend the budget.
	if deadline, has := ctx.Deadline(); has && time.Now().Add(wait).After(deadline) {
		return 0, false
	}
	return wait, r.budget.withdraw(time.Now())
}

// wait is how long to wait before the retry after attempt: the answer's
// Retry-After (or, without one, a backoff doubling from firstBackoff),
// stretched by up to half of it at random, so that callers refused at
// once do not come back at once. Past MaxWait there is no retry.
func (p RetryPolicy) wait(attempt int, retryAfter time.Duration, random float64) (time.Duration, bool) {
	base := retryAfter
	if base <= 0 {
		base = firstBackoff << (attempt - 1)
	}
	if base > p.MaxWait {
		return 0, false
	}
	return min(base+time.Duration(random*float64(base)/2), p.MaxWait), true
}

// sleep waits for d, or less if ctx ends first, which it reports.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryBudget is the token bucket that pays for retries.
type retryBudget struct {
	ratio, perSecond float64

	mu      sync.Mutex
	balance float64
	last    time.Time // when the floor was last added
}

func newRetryBudget(ratio, perSecond float64, now time.Time) *retryBudget {
	return &retryBudget{ratio: ratio, perSecond: perSecond, balance: maxRetryBalance, last: now}
}

// deposit adds a read's share.
func (b *retryBudget) deposit(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.balance = min(b.balance+b.ratio, maxRetryBalance)
}

// withdraw takes a retry, if the budget holds one.
func (b *retryBudget) withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.balance < 1 {
		return false
	}
	b.balance--
	return true
}

// refill adds the floor for the time since the last refill; b.mu is held.
func (b *retryBudget) refill(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.balance = min(b.balance+elapsed.Seconds()*b.perSecond, maxRetryBalance)
		b.last = now
	}
}
