package loadbench

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
)

// measureFloor starts the floor as a process and asks it the checks.
func (r *run) measureFloor(ctx context.Context) (err error) {
	addr, base, err := loopback()
	if err != nil {
		return fmt.Errorf("bench: floor: %w", err)
	}
	done := r.step(ctx, "starting the floor")
	proc, err := startChild("floor", r.logDir, r.cfg.TenantgateBin, FloorCommand,
		"--database-url="+r.appURL, "--http-addr="+addr, "--jwks-file="+r.jwksFile,
		"--issuer="+benchIssuer, "--audience="+benchIssuer, "--log-format=json")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer func() { err = errors.Join(err, proc.stop(context.WithoutCancel(ctx))) }()
	if err := proc.awaitHTTP(ctx, base+"/readyz"); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	done()
	api := newAPIClient(base, r.cfg.Clients, r.tokens)
	defer api.close()
	res, err := r.checks(ctx, string(SystemFloor), api.check)
	if err != nil {
		return err
	}
	res.notes = append(res.notes, "same JWT verification and token cache as the gateway", memory(proc.pid()))
	r.results = append(r.results, res)
	return nil
}

// measureSQL asks the application's tables the checks and lists.
func (r *run) measureSQL(ctx context.Context) error {
	db, err := openPool(ctx, r.appURL, r.cfg.Clients, false)
	if err != nil {
		return fmt.Errorf("bench: sql: %w", err)
	}
	defer db.Close()
	sys := sqlSystem{db: db}
	res, err := r.checks(ctx, string(SystemSQL), sys.check)
	if err != nil {
		return err
	}
	res.notes = append(res.notes, "recursive CTE up the parent chain, pgx from this process")
	lists, err := r.lists(ctx, string(SystemSQL), sys.list)
	if err != nil {
		return err
	}
	r.results = append(append(r.results, res), lists...)
	return nil
}

// measureSpiceDB asks a `spicedb serve` of its own on the remote datastore
// directly over gRPC.
func (r *run) measureSpiceDB(ctx context.Context) (err error) {
	name := string(SystemSpiceDB)
	sdb, err := r.freshSpiceDB(ctx, name)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sdb.stop(context.WithoutCancel(ctx))) }()
	token, err := r.syncToken(ctx)
	if err != nil {
		return err
	}
	sys := spiceDBSystem{client: sdb.client, cons: authz.Consistency{AtLeastAsFresh: token}}
	res, err := r.checks(ctx, name, sys.check)
	if err != nil {
		return err
	}
	res.notes = append(res.notes, "CheckPermission over gRPC, at least as fresh as the sync's last write", "spicedb "+memory(sdb.proc.pid()))
	bulk, err := r.bulk(ctx, name, sys.checkBulk)
	if err != nil {
		return err
	}
	lists, err := r.lists(ctx, name, sys.list)
	if err != nil {
		return err
	}
	r.results = append(append(r.results, res, bulk), lists...)
	return nil
}

// syncToken is the ZedToken of the remote sync's last write: what a
// caller of SpiceDB holds after a write and asks at least as fresh as.
// Without it SpiceDB may answer from a revision from before the snapshot
// was imported, which is wrong, not fast.
func (r *run) syncToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	progress, err := mirror.NewAppliedReader(r.db, remoteSlot).Progress(ctx)
	if err == nil && progress.Token == "" {
		err = errors.New("no checkpoint yet")
	}
	if err != nil {
		return "", fmt.Errorf("bench: spicedb: the sync's token: %w", err)
	}
	return progress.Token, nil
}

// warmUpShare of the budget bounds the untimed warm-up.
const warmUpShare = 6

// checks asks the warm-up checks, then times the checks; every answer is
// verified.
func (r *run) checks(ctx context.Context, system string, answer checkFunc) (result, error) {
	call := verified(system, answer)
	done := r.step(ctx, "single checks", "system", system, "checks", len(r.work.checks), "clients", r.cfg.Clients)
	if _, err := drive(ctx, r.cfg.Clients, r.cfg.Budget/warmUpShare, r.work.warm, call); err != nil {
		return result{}, fmt.Errorf("bench: warm-up: %w", err)
	}
	t, err := drive(ctx, r.cfg.Clients, r.cfg.Budget, r.work.checks, call)
	if err != nil {
		return result{}, fmt.Errorf("bench: %w", err)
	}
	done()
	res := result{system: system, kind: kindCheck, measure: "check", rate: t.perSecond(t.calls),
		p50: t.percentile(50), p99: t.percentile(99), max: t.max()}
	if cut := t.cut(len(r.work.checks), r.cfg.Budget); cut != "" {
		res.notes = append(res.notes, cut)
	}
	r.log.InfoContext(ctx, "bench: measured", "system", system, "measure", res.measure, "checks", t.calls, "checks/s", int(res.rate), "p50", res.p50, "p99", res.p99)
	return res, nil
}

func (r *run) bulk(ctx context.Context, system string, answer bulkFunc) (result, error) {
	done := r.step(ctx, "bulk checks", "system", system, "calls", len(r.work.batches), "per call", r.cfg.BulkSize)
	t, err := drive(ctx, r.cfg.Clients, r.cfg.Budget, r.work.batches, verifiedBulk(system, answer))
	if err != nil {
		return result{}, fmt.Errorf("bench: %w", err)
	}
	done()
	res := result{system: system, kind: kindBulk, measure: fmt.Sprintf("bulk, %d per call", r.cfg.BulkSize), rate: t.perSecond(t.calls * r.cfg.BulkSize),
		p50: t.percentile(50), p99: t.percentile(99), max: t.max(), notes: []string{"latency per call"}}
	if cut := t.cut(len(r.work.batches), r.cfg.Budget); cut != "" {
		res.notes = append(res.notes, cut)
	}
	r.log.InfoContext(ctx, "bench: measured", "system", system, "measure", res.measure, "checks/s", int(res.rate), "p50", res.p50)
	return res, nil
}

// lists reads each list user's whole list once untimed, then
// ListRepeats times timed, one at a time.
func (r *run) lists(ctx context.Context, system string, list listFunc) ([]result, error) {
	call := verifiedList(system, r.truth, list)
	var out []result
	for _, job := range r.work.lists {
		done := r.step(ctx, "lists", "system", system, "companies", job.Size, "repeats", r.cfg.ListRepeats)
		if err := call(ctx, job); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		t, err := drive(ctx, 1, r.cfg.Budget, slices.Repeat([]listJob{job}, r.cfg.ListRepeats), call)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		done()
		res := result{system: system, kind: kindList, measure: "list of " + thousands(int64(job.Size)), listSize: job.Size,
			p50: t.percentile(50), p99: t.percentile(99), max: t.max(), notes: []string{fmt.Sprintf("%d reads, every page", t.calls)}}
		if cut := t.cut(r.cfg.ListRepeats, r.cfg.Budget); cut != "" {
			res.notes = append(res.notes, cut)
		}
		out = append(out, res)
	}
	return out, nil
}

func (r *run) measureIndex(ctx context.Context, memberships int) error {
	done := r.step(ctx, "index memory in this process", "memberships", memberships)
	fp, err := measureIndex(r.cfg.Sizes, memberships)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	done()
	r.results = append(r.results, result{system: "index, in this process", kind: kindBuild,
		measure: "build from " + thousands(int64(memberships)) + " memberships", rate: float64(fp.relationships) / fp.took.Seconds(),
		notes: []string{
			fmt.Sprintf("%s relationships in %s", thousands(int64(fp.relationships)), durationText(fp.took)),
			fmt.Sprintf("%.1f bytes per relationship (%s of live heap)", float64(fp.heap)/float64(max(fp.relationships, 1)), bytesText(fp.heap)),
		}})
	return nil
}
