package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// ReconcileResult counts what a reconcile found and repaired.
type ReconcileResult struct {
	// Missing relationships were derived from Postgres but absent from
	// SpiceDB, and were written.
	Missing int64
	// Extra relationships were in SpiceDB but not derived from Postgres, and
	// were deleted.
	Extra int64
	// Skipped rows could not be mapped and went to the dead letters.
	Skipped int64
}

// expectedSQL derives, in SQL, the relationships the rows stand for, with
// the row columns the Go mapping needs to validate them. The names of the
// model (the parent relation, the object types, the status that grants)
// are its arguments, expectedArgs, taken from package authz, so that the
// SQL cannot drift from the Go mapping (authz.MembershipRelationship).
const expectedSQL = `
	SELECT 'companies'::text AS source_table, c.id AS row_id, c.id AS resource, $1::text AS relation,
	       $2::text AS subject_type, c.parent_id AS subject_id, NULL::text AS role, NULL::text AS status
	  FROM companies c WHERE c.parent_id IS NOT NULL
	UNION ALL
	SELECT 'company_memberships', m.id, m.company_id, m.role, $3::text, m.user_id, m.role, m.status
	  FROM company_memberships m WHERE m.status = $4::text`

var expectedArgs = []any{authz.RelationParent, authz.TypeCompany, authz.TypeUser, string(authz.StatusActive)}

// reconcileTable holds SpiceDB's side for one reconcile; it is a temporary
// table, so it lives only in the reconcile's transaction and writes no WAL.
const reconcileTable = "tenantgate_reconcile_spicedb"

// reconcile makes SpiceDB hold exactly the relationships Postgres derives.
// SpiceDB's relationships are streamed into a temporary table and the two
// sets are compared there, so memory stays bounded by one batch whatever the
// table sizes. It must not run concurrently with the stream: a repair based
// on rows read before a change the stream applied later could undo it. While
// it runs, keepAlive is called between batches.
func (s *Syncer) reconcile(ctx context.Context, st pgState, keepAlive func() error) (ReconcileResult, error) {
	conn, err := st.pool.Acquire(ctx)
	if err != nil {
		return ReconcileResult{}, fmt.Errorf("sync: reconcile: %w: %w", authz.ErrUnavailable, err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return ReconcileResult{}, fmt.Errorf("sync: reconcile: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // temp table only
	return s.reconcileIn(ctx, tx, keepAlive)
}

// reconcileIn reconciles SpiceDB with the rows tx sees, and commits tx (a
// repeatable-read transaction: the comparison needs one view of the rows).
// The fresh snapshot runs it inside the slot's exported snapshot, so that
// SpiceDB ends equal to the rows at the slot's consistent point.
func (s *Syncer) reconcileIn(ctx context.Context, tx pgx.Tx, keepAlive func() error) (ReconcileResult, error) {
	started := time.Now()
	s.noteReconcile(started)
	var res ReconcileResult
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+reconcileTable+` (resource text, relation text, subject_type text, subject_id text) ON COMMIT DROP`); err != nil {
		return res, fmt.Errorf("sync: reconcile: %w", err)
	}
	loaded, err := s.loadTarget(ctx, tx)
	if err != nil {
		return res, err
	}
	if _, err := tx.Exec(ctx, `ANALYZE `+reconcileTable); err != nil {
		return res, fmt.Errorf("sync: reconcile: %w", err)
	}
	if res.Missing, res.Skipped, err = s.repairMissing(ctx, tx, keepAlive); err != nil {
		return res, err
	}
	if res.Extra, err = s.repairExtra(ctx, tx, keepAlive); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("sync: reconcile: %w", err)
	}
	s.metrics.reconciled.WithLabelValues("missing").Add(float64(res.Missing))
	s.metrics.reconciled.WithLabelValues("extra").Add(float64(res.Extra))
	s.cfg.Logger.Info("sync: reconcile done", "spicedb_relationships", loaded, "missing", res.Missing,
		"extra", res.Extra, "skipped", res.Skipped, "duration", time.Since(started).Round(time.Millisecond))
	return res, nil
}

// loadTarget copies every relationship SpiceDB holds into the temporary
// table, streaming: a reader goroutine feeds COPY one batch at a time.
func (s *Syncer) loadTarget(ctx context.Context, tx pgx.Tx) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan [][]any, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([][]any, 0, maxBatch)
		err := s.target.ReadRelationships(ctx, func(r authz.Relationship) error {
			batch = append(batch, []any{r.Resource, r.Relation, r.SubjectType, r.SubjectID})
			if len(batch) < maxBatch {
				return nil
			}
			select {
			case batches <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([][]any, 0, maxBatch)
			return nil
		})
		if err == nil && len(batch) > 0 {
			select {
			case batches <- batch:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		readErr <- err
	}()
	n, err := tx.CopyFrom(ctx, pgx.Identifier{reconcileTable},
		[]string{"resource", "relation", "subject_type", "subject_id"}, &chanSource{batches: batches})
	if err != nil {
		cancel()
		<-readErr
		return 0, fmt.Errorf("sync: reconcile: load spicedb relationships: %w", err)
	}
	if err := <-readErr; err != nil {
		return 0, fmt.Errorf("sync: reconcile: read spicedb: %w", err)
	}
	return n, nil
}

// chanSource is a pgx.CopyFromSource over batches of rows.
type chanSource struct {
	batches <-chan [][]any
	cur     [][]any
	i       int
}

func (c *chanSource) Next() bool {
	for c.i+1 >= len(c.cur) {
		b, ok := <-c.batches
		if !ok {
			return false
		}
		c.cur, c.i = b, -1
	}
	c.i++
	return true
}

func (c *chanSource) Values() ([]any, error) { return c.cur[c.i], nil }
func (c *chanSource) Err() error             { return nil }

// repairMissing writes what Postgres derives and SpiceDB lacks.
func (s *Syncer) repairMissing(ctx context.Context, tx pgx.Tx, keepAlive func() error) (missing, skipped int64, err error) {
	rows, err := tx.Query(ctx, `WITH expected AS (`+expectedSQL+`)
		SELECT e.source_table, e.row_id, e.resource, e.subject_id, e.role, e.status FROM expected e
		WHERE NOT EXISTS (SELECT 1 FROM `+reconcileTable+` t WHERE t.resource = e.resource AND t.relation = e.relation
			AND t.subject_type = e.subject_type AND t.subject_id = e.subject_id)`, expectedArgs...)
	if err != nil {
		return 0, 0, fmt.Errorf("sync: reconcile: find missing: %w", err)
	}
	defer rows.Close()
	var batch []authz.Update
	for rows.Next() {
		var table, id, resource, subject string
		var role, status *string
		if err := rows.Scan(&table, &id, &resource, &subject, &role, &status); err != nil {
			return 0, 0, fmt.Errorf("sync: reconcile: %w", err)
		}
		updates, bad := change(table, nil, sourceRow(table, id, resource, subject, role, status))
		skipped += int64(len(bad))
		s.skip(ctx, bad, 0)
		missing += int64(len(updates))
		batch = append(batch, updates...)
		if len(batch) >= maxBatch {
			if err := s.applyAndKeepAlive(ctx, batch, keepAlive); err != nil {
				return 0, 0, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("sync: reconcile: find missing: %w", err)
	}
	return missing, skipped, s.applyAndKeepAlive(ctx, batch, keepAlive)
}

// sourceRow rebuilds the columns of a source row that the mapping reads.
func sourceRow(table, id, resource, subject string, role, status *string) row {
	if table == tableCompanies {
		return row{"id": id, "parent_id": subject}
	}
	return row{"id": id, "company_id": resource, "user_id": subject, "role": *role, "status": *status}
}

// repairExtra deletes what SpiceDB holds and Postgres does not derive.
func (s *Syncer) repairExtra(ctx context.Context, tx pgx.Tx, keepAlive func() error) (int64, error) {
	rows, err := tx.Query(ctx, `WITH expected AS (`+expectedSQL+`)
		SELECT t.resource, t.relation, t.subject_type, t.subject_id FROM `+reconcileTable+` t
		WHERE NOT EXISTS (SELECT 1 FROM expected e WHERE t.resource = e.resource AND t.relation = e.relation
			AND t.subject_type = e.subject_type AND t.subject_id = e.subject_id)`, expectedArgs...)
	if err != nil {
		return 0, fmt.Errorf("sync: reconcile: find extra: %w", err)
	}
	defer rows.Close()
	var extra int64
	var batch []authz.Update
	for rows.Next() {
		var r authz.Relationship
		if err := rows.Scan(&r.Resource, &r.Relation, &r.SubjectType, &r.SubjectID); err != nil {
			return 0, fmt.Errorf("sync: reconcile: %w", err)
		}
		extra++
		batch = append(batch, authz.Update{Op: authz.OpDelete, Rel: r})
		if len(batch) >= maxBatch {
			if err := s.applyAndKeepAlive(ctx, batch, keepAlive); err != nil {
				return 0, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sync: reconcile: find extra: %w", err)
	}
	return extra, s.applyAndKeepAlive(ctx, batch, keepAlive)
}

func (s *Syncer) applyAndKeepAlive(ctx context.Context, batch []authz.Update, keepAlive func() error) error {
	if err := s.apply(ctx, batch); err != nil {
		return err
	}
	return keepAlive()
}

// Reconcile run bookkeeping: `tenantgate sync --reconcile` files a request,
// and whichever process is the active sync carries it out.

func (p pgState) requestReconcile(ctx context.Context, by string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var id int64
	err := p.pool.QueryRow(ctx, `INSERT INTO tenantgate.sync_reconcile_runs (requested_by) VALUES ($1) RETURNING id`, by).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("sync: request reconcile: %w", err)
	}
	return id, nil
}

// claimReconcile takes the oldest request nobody started, if any.
func (p pgState) claimReconcile(ctx context.Context) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var id int64
	err := p.pool.QueryRow(ctx, `UPDATE tenantgate.sync_reconcile_runs SET started_at = now()
		WHERE id = (SELECT id FROM tenantgate.sync_reconcile_runs WHERE started_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id`).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("sync: claim reconcile: %w", err)
	}
	return id, true, nil
}

func (p pgState) finishReconcile(ctx context.Context, id int64, res ReconcileResult, runErr error) error {
	var msg *string
	if runErr != nil {
		m := runErr.Error()
		msg = &m
	}
	err := p.exec(ctx, `UPDATE tenantgate.sync_reconcile_runs SET finished_at = now(), missing = $2, extra = $3, skipped = $4, error = $5 WHERE id = $1`,
		id, res.Missing, res.Extra, res.Skipped, msg)
	if err != nil {
		return fmt.Errorf("sync: finish reconcile: %w", err)
	}
	return nil
}

// reconcileOutcome reads a finished run; done is false while it runs.
func (p pgState) reconcileOutcome(ctx context.Context, id int64) (res ReconcileResult, done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var finished *time.Time
	var missing, extra, skipped *int64
	var msg *string
	err = p.pool.QueryRow(ctx, `SELECT finished_at, missing, extra, skipped, error FROM tenantgate.sync_reconcile_runs WHERE id = $1`, id).
		Scan(&finished, &missing, &extra, &skipped, &msg)
	if err != nil {
		return res, false, fmt.Errorf("sync: read reconcile run: %w", err)
	}
	if finished == nil {
		return res, false, nil
	}
	if msg != nil {
		return res, true, fmt.Errorf("sync: reconcile run %d failed: %s", id, *msg)
	}
	return ReconcileResult{Missing: *missing, Extra: *extra, Skipped: *skipped}, true, nil
}

// ReconcileNow has one reconcile carried out and returns what it repaired.
// The request goes through tenantgate.sync_reconcile_runs: when a persistent
// sync is active it does the work between two stream messages; when none is,
// this process takes the active lock and does it itself.
func (s *Syncer) ReconcileNow(ctx context.Context) (ReconcileResult, error) {
	pool, err := openPool(ctx, s.src)
	if err != nil {
		return ReconcileResult{}, err
	}
	defer pool.Close()
	st := pgState{pool: pool, slot: s.cfg.Slot}
	s.state = st
	id, err := st.requestReconcile(ctx, "command")
	if err != nil {
		return ReconcileResult{}, err
	}
	for logged := false; ; logged = true {
		lock, err := tryLock(ctx, s.src, s.cfg.Slot)
		if err != nil {
			return ReconcileResult{}, err
		}
		if lock != nil {
			err := s.runClaimed(ctx, st, noKeepAlive)
			lock.release(context.WithoutCancel(ctx))
			if err != nil {
				return ReconcileResult{}, err
			}
		} else if !logged {
			s.cfg.Logger.Info("sync: the active sync will carry out the reconcile; waiting for it", "run", id)
		}
		res, done, err := st.reconcileOutcome(ctx, id)
		if err != nil || done {
			return res, err
		}
		select {
		case <-ctx.Done():
			return ReconcileResult{}, ctx.Err()
		case <-time.After(s.cfg.StandbyPoll):
		}
	}
}

// runClaimed carries out every pending reconcile request. The caller is the
// active sync, so no stream applies changes meanwhile.
func (s *Syncer) runClaimed(ctx context.Context, st pgState, keepAlive func() error) error {
	for {
		id, ok, err := st.claimReconcile(ctx)
		if err != nil || !ok {
			return err
		}
		res, runErr := s.reconcile(ctx, st, keepAlive)
		if err := st.finishReconcile(ctx, id, res, runErr); err != nil {
			return err
		}
		if runErr != nil {
			return runErr
		}
	}
}
