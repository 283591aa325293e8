package index

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Fallback is SpiceDB asked directly: it answers what the index cannot
// answer in time, and verifies samples of what the index answered.
type Fallback interface {
	Check(ctx context.Context, req authz.CheckRequest, c authz.Consistency) (allowed bool, token string, err error)
	CheckBulk(ctx context.Context, reqs []authz.CheckRequest, c authz.Consistency) (allowed []bool, token string, err error)
	LookupCompanies(ctx context.Context, user string, p authz.Permission, c authz.Consistency, limit int, cursor string) (ids []string, nextCursor string, err error)
}

// Freshness decides whether an answer at a revision is fresh enough for a
// read: as fresh as the read's consistency token and the gateway's floor,
// by the revision rules of SpiceDB's datastore.
type Freshness interface {
	Reflects(have string, c authz.Consistency) (bool, error)
}

// Config tunes an Authorizer.
type Config struct {
	// Wait is how long a read waits for the index to reach the revision it
	// must reflect before SpiceDB answers it.
	Wait time.Duration
	// VerifyFraction of index answers are re-asked of SpiceDB at the same
	// revision in the background (0 to 1).
	VerifyFraction float64
}

// Authorizer answers from the index whenever the index reflects a revision
// at least as fresh as the read needs, and asks SpiceDB otherwise, so an
// answer is never staler than SpiceDB's own would be. It implements the
// gateway's Authorizer.
type Authorizer struct {
	index    *Index
	follower *follower
	spicedb  Fallback
	fresh    Freshness
	wait     time.Duration
	verifier *verifier
	metrics  *metrics
	log      *slog.Logger
}

// NewAuthorizer builds an Authorizer over an index that src feeds once Run
// starts, registering its metrics with reg.
func NewAuthorizer(cfg Config, src Source, spicedb Fallback, fresh Freshness, reg prometheus.Registerer, logger *slog.Logger) (*Authorizer, error) {
	if cfg.Wait < 0 || !(cfg.VerifyFraction >= 0 && cfg.VerifyFraction <= 1) {
		return nil, fmt.Errorf("index: %w: wait %v, verify fraction %v", authz.ErrInvalid, cfg.Wait, cfg.VerifyFraction)
	}
	ix := New()
	m, err := newMetrics(reg, ix)
	if err != nil {
		return nil, err
	}
	return &Authorizer{
		index:    ix,
		follower: &follower{index: ix, source: src, log: logger, metrics: m},
		spicedb:  spicedb,
		fresh:    fresh,
		wait:     cfg.Wait,
		verifier: newVerifier(cfg.VerifyFraction, m, logger),
		metrics:  m,
		log:      logger,
	}, nil
}

// Run loads and follows the index, and verifies samples, until ctx ends.
func (a *Authorizer) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.verifier.run(ctx)
	}()
	a.follower.run(ctx)
	<-done
}

// Why a read was answered by SpiceDB rather than the index; the labels of
// tenantgate_index_reads_total.
const (
	byIndex       = "index"
	reasonFresh   = "fresh"
	bySpiceDB     = "spicedb"
	reasonLoading = "loading"
	reasonBehind  = "behind"
	reasonError   = "error"
)

// answer runs fn on the index once it is fresh enough for c, waiting up to
// the configured time. ok false means SpiceDB must answer. err is only a
// malformed consistency token, which SpiceDB would refuse as well.
func (a *Authorizer) answer(ctx context.Context, c authz.Consistency, fn func(*Graph) error) (token string, ok bool, err error) {
	var answerErr error
	token, ok, err = a.index.read(ctx, a.wait, func(have string) (bool, error) { return a.fresh.Reflects(have, c) },
		func(g *Graph) error { answerErr = fn(g); return nil })
	switch {
	case err != nil:
		return "", false, err
	case !ok && token == "":
		a.metrics.readsLoading.Inc()
	case !ok:
		a.metrics.readsBehind.Inc()
	case answerErr != nil:
		a.log.Warn("index: cannot answer; asking SpiceDB", "err", answerErr)
		a.metrics.readsError.Inc()
		ok = false
	default:
		a.metrics.readsFresh.Inc()
	}
	return token, ok, nil
}

// Check answers from the index when it is fresh enough, from SpiceDB
// otherwise.
func (a *Authorizer) Check(ctx context.Context, req authz.CheckRequest, c authz.Consistency) (bool, string, error) {
	if err := authz.ValidateUserID(req.User); err != nil {
		return false, "", fmt.Errorf("index: %w", err)
	}
	var allowed bool
	token, ok, err := a.answer(ctx, c, func(g *Graph) (err error) {
		allowed, err = g.Check(req.User, req.Permission, req.Company)
		return err
	})
	switch {
	case err != nil:
		return false, "", err
	case !ok:
		return a.spicedb.Check(ctx, req, c)
	}
	a.verifier.sample(func(ctx context.Context) (string, error) {
		want, _, err := a.spicedb.Check(ctx, req, authz.Consistency{AtRevision: token})
		if err != nil || want == allowed {
			return "", err
		}
		return fmt.Sprintf("check %s %s %s: index %v, spicedb %v", req.User, req.Permission, req.Company, allowed, want), nil
	})
	return allowed, token, nil
}

// CheckBulk answers every check from the index or every check from
// SpiceDB, at one revision either way.
func (a *Authorizer) CheckBulk(ctx context.Context, reqs []authz.CheckRequest, c authz.Consistency) ([]bool, string, error) {
	for _, r := range reqs {
		if err := authz.ValidateUserID(r.User); err != nil {
			return nil, "", fmt.Errorf("index: %w", err)
		}
	}
	var allowed []bool
	token, ok, err := a.answer(ctx, c, func(g *Graph) (err error) {
		allowed, err = g.CheckBulk(reqs)
		return err
	})
	switch {
	case err != nil:
		return nil, "", err
	case !ok:
		return a.spicedb.CheckBulk(ctx, reqs, c)
	}
	a.verifier.sample(func(ctx context.Context) (string, error) {
		want, _, err := a.spicedb.CheckBulk(ctx, reqs, authz.Consistency{AtRevision: token})
		if err != nil {
			return "", err
		}
		for i := range reqs {
			if want[i] != allowed[i] {
				r := reqs[i]
				return fmt.Sprintf("bulk check %s %s %s: index %v, spicedb %v", r.User, r.Permission, r.Company, allowed[i], want[i]), nil
			}
		}
		return "", nil
	})
	return allowed, token, nil
}

// LookupCompanies lists from the index, in ID order with the same cursors
// as SpiceDB's path, when the index is fresh enough.
func (a *Authorizer) LookupCompanies(ctx context.Context, user string, p authz.Permission, c authz.Consistency, limit int, cursor string) ([]string, string, error) {
	if err := authz.ValidateUserID(user); err != nil {
		return nil, "", fmt.Errorf("index: %w", err)
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("index: lookup: %w: limit %d", authz.ErrInvalid, limit)
	}
	var ids []string
	var next string
	token, ok, err := a.answer(ctx, c, func(g *Graph) (err error) {
		ids, next, err = g.Lookup(user, p, cursor, limit)
		return err
	})
	switch {
	case err != nil:
		return nil, "", err
	case !ok:
		return a.spicedb.LookupCompanies(ctx, user, p, c, limit, cursor)
	}
	a.verifier.sample(func(ctx context.Context) (string, error) {
		want, wantNext, err := a.spicedb.LookupCompanies(ctx, user, p, authz.Consistency{AtRevision: token}, limit, cursor)
		if err != nil || (slices.Equal(want, ids) && wantNext == next) {
			return "", err
		}
		return fmt.Sprintf("lookup %s %s after %q: index %d companies (next %q), spicedb %d (next %q)", user, p, cursor, len(ids), next, len(want), wantNext), nil
	})
	return ids, next, nil
}
