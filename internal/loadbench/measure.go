package loadbench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// callTimeout bounds every single call the bench makes to a system under
// test: a check, a page of a list, a bulk call, a commit. It is above the
// gateway's request timeout, so that a gateway's own 503 at its deadline
// arrives before the bench gives up on the call.
const callTimeout = gateway.DefaultRequestTimeout + 5*time.Second

// WrongAnswerError is a check a system answered differently from the
// ground truth. It ends the run.
type WrongAnswerError struct {
	System string
	Check  Check
	Got    bool
}

func (e *WrongAnswerError) Error() string {
	return fmt.Sprintf("wrong answer from %s: %s? it answered %t, the ground truth is %t",
		e.System, e.Check, e.Got, e.Check.Want)
}

// WrongListError is a list a system answered differently from the ground
// truth. It ends the run.
type WrongListError struct {
	System     string
	User       string
	Permission authz.Permission
	Got, Want  []string
}

func (e *WrongListError) Error() string {
	missing, extra := difference(e.Want, e.Got), difference(e.Got, e.Want)
	return fmt.Sprintf("wrong list from %s: companies %s may %s: got %d, the ground truth has %d; missing %s, extra %s",
		e.System, e.User, e.Permission, len(e.Got), len(e.Want), firstFew(missing), firstFew(extra))
}

// difference lists what of a is not in b.
func difference(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

func firstFew(ids []string) string {
	const few = 5
	if len(ids) == 0 {
		return "none"
	}
	if len(ids) > few {
		return fmt.Sprintf("%s and %d more", strings.Join(ids[:few], ", "), len(ids)-few)
	}
	return strings.Join(ids, ", ")
}

// timing is how long a run of calls took, in all and each.
type timing struct {
	// calls is how many were made: all items, or fewer when the budget
	// ran out.
	calls int
	took  time.Duration
	// latencies are sorted.
	latencies []time.Duration
}

func (t timing) perSecond(n int) float64 { return float64(n) / t.took.Seconds() }

// percentile is the nearest-rank percentile p (0 to 100).
func (t timing) percentile(p float64) time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(t.latencies))))
	return t.latencies[min(max(rank-1, 0), len(t.latencies)-1)]
}

func (t timing) max() time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	return t.latencies[len(t.latencies)-1]
}

// drive makes one call per item from clients concurrent clients, each
// taking the next item as soon as its last call returned (a closed loop),
// and times every call. Once budget has passed (0: never) no client takes
// another item, so a slow system answers fewer instead of holding the run
// up for an hour. The first error, a wrong answer included, stops every
// client and is returned.
func drive[T any](ctx context.Context, clients int, budget time.Duration, items []T, call func(context.Context, T) error) (timing, error) {
	latencies := make([]time.Duration, len(items))
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	began := time.Now()
	over := func() bool { return budget > 0 && time.Since(began) > budget }
	for range clients {
		g.Go(func() error {
			for gctx.Err() == nil && !over() {
				i := next.Add(1) - 1
				if i >= int64(len(items)) {
					return nil
				}
				t := time.Now()
				if err := call(gctx, items[i]); err != nil {
					return err
				}
				latencies[i] = time.Since(t)
			}
			return nil
		})
	}
	err := g.Wait()
	took := time.Since(began)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx) // the clients stopped without a call failing
	}
	if err != nil {
		return timing{}, err
	}
	// Items are taken in order and every one taken was answered.
	latencies = latencies[:min(int(next.Load()), len(items))]
	slices.Sort(latencies)
	return timing{calls: len(latencies), took: took, latencies: latencies}, nil
}

// cut is a note for a run the budget ended early, "" otherwise.
func (t timing) cut(of int, budget time.Duration) string {
	if t.calls == of {
		return ""
	}
	return fmt.Sprintf("stopped after %s: %s of %s calls", budget, thousands(int64(t.calls)), thousands(int64(of)))
}

// checkFunc answers one check.
type checkFunc func(ctx context.Context, c Check) (bool, error)

// verified wraps answer so that any answer other than the ground truth's
// is a WrongAnswerError.
func verified(system string, answer checkFunc) func(context.Context, Check) error {
	return func(ctx context.Context, c Check) error {
		got, err := answer(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", system, c, err)
		}
		if got != c.Want {
			return &WrongAnswerError{System: system, Check: c, Got: got}
		}
		return nil
	}
}

// bulkFunc answers the checks of one bulk call, in order.
type bulkFunc func(ctx context.Context, checks []Check) ([]bool, error)

func verifiedBulk(system string, answer bulkFunc) func(context.Context, []Check) error {
	return func(ctx context.Context, checks []Check) error {
		got, err := answer(ctx, checks)
		if err != nil {
			return fmt.Errorf("%s: bulk check of %d about %s: %w", system, len(checks), checks[0].User, err)
		}
		if len(got) != len(checks) {
			return fmt.Errorf("%s: bulk check of %d answered %d", system, len(checks), len(got))
		}
		for i, c := range checks {
			if got[i] != c.Want {
				return &WrongAnswerError{System: system, Check: c, Got: got[i]}
			}
		}
		return nil
	}
}

// listFunc lists, sorted, every company user may do p on.
type listFunc func(ctx context.Context, user string, p authz.Permission) ([]string, error)

func verifiedList(system string, truth *Truth, list listFunc) func(context.Context, listJob) error {
	return func(ctx context.Context, job listJob) error {
		got, err := list(ctx, job.User, authz.PermRead)
		if err != nil {
			return fmt.Errorf("%s: list of %s: %w", system, job.User, err)
		}
		if want := truth.Companies(job.User, authz.PermRead); !slices.Equal(got, want) {
			return &WrongListError{System: system, User: job.User, Permission: authz.PermRead, Got: got, Want: want}
		}
		return nil
	}
}
