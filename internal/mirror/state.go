package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/wal"
)

// pgState is the sync's bookkeeping in the application database (schema
// tenantgate, created by `tenantgate migrate`).
type pgState struct {
	pool *pgxpool.Pool
	slot string
}

// queryTimeout bounds every bookkeeping statement.
const queryTimeout = 10 * time.Second

func (p pgState) exec(ctx context.Context, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	_, err := p.pool.Exec(ctx, sql, args...)
	return err
}

// activeLock is the advisory lock that makes one sync per slot the active
// one. It lives as long as the connection that holds it, so a sync that dies
// releases it the moment Postgres notices the connection is gone.
type activeLock struct{ conn *pgx.Conn }

// lockSQL derives the lock key from the slot name, so syncs of different
// slots (or databases) never wait for each other.
const lockSQL = `SELECT pg_try_advisory_lock(hashtextextended('tenantgate sync ' || $1, 0))`

// acquireLock waits, as a hot standby, until this process may be the active
// sync, trying every interval; standby is called once if it has to wait.
func acquireLock(ctx context.Context, src source, slot string, interval time.Duration, standby func()) (*activeLock, error) {
	for waited := false; ; waited = true {
		lock, err := tryLock(ctx, src, slot)
		if err != nil || lock != nil {
			return lock, err
		}
		if !waited {
			standby()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// tryLock takes the active lock if it is free; nil means another sync holds
// it.
func tryLock(ctx context.Context, src source, slot string) (*activeLock, error) {
	cfg, err := src.connConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sync: lock connection: %w", classify(err, authz.ErrUnavailable))
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var got bool
	if err := conn.QueryRow(qctx, lockSQL, slot).Scan(&got); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sync: take the active lock: %w: %w", authz.ErrUnavailable, err)
	}
	if !got {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil
	}
	return &activeLock{conn: conn}, nil
}

// alive fails when the lock's connection is gone: the lock went with it and
// another sync may be active now.
func (l *activeLock) alive(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("sync: lost the active lock: %w: %w", authz.ErrUnavailable, err)
	}
	return nil
}

func (l *activeLock) release(ctx context.Context) { _ = l.conn.Close(ctx) }

// slotInfo is what Postgres knows of the persistent slot.
type slotInfo struct {
	exists, lost bool
}

func (p pgState) slotInfo(ctx context.Context) (slotInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var walStatus *string
	var database string
	var ours bool
	err := p.pool.QueryRow(ctx, `SELECT wal_status, coalesce(database::text, ''), database IS NOT DISTINCT FROM current_database()
		FROM pg_replication_slots WHERE slot_name = $1`, p.slot).Scan(&walStatus, &database, &ours)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotInfo{}, nil
	}
	if err != nil {
		return slotInfo{}, fmt.Errorf("sync: read slot: %w", classify(err, nil))
	}
	if !ours {
		// Creating it would fail with "already exists" at every retry.
		return slotInfo{}, fmt.Errorf("sync: %w: %s: %s", authz.ErrInvalid, slotTaken(p.slot, database), slotTakenFix)
	}
	return slotInfo{exists: true, lost: walStatus != nil && *walStatus == "lost"}, nil
}

func (p pgState) snapshotDone(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var done bool
	err := p.pool.QueryRow(ctx, `SELECT snapshot_done FROM tenantgate.sync_state WHERE slot = $1`, p.slot).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sync: read state: %w", classify(err, nil))
	}
	return done, nil
}

// beginSnapshot records that a new slot's snapshot is under way: until it
// is done, the slot's confirmed position does not count as applied, only
// the checkpoints do. forget drops the checkpoints as well, for a SpiceDB
// that no longer holds what they cover (an empty one); one statement, so
// that no reader sees one change without the other.
func (p pgState) beginSnapshot(ctx context.Context, forget bool) error {
	err := p.exec(ctx, `WITH forgotten AS (DELETE FROM tenantgate.sync_checkpoints WHERE slot = $1 AND $2)
		INSERT INTO tenantgate.sync_state (slot, snapshot_done) VALUES ($1, false)
		ON CONFLICT (slot) DO UPDATE SET snapshot_done = false, updated_at = now()`, p.slot, forget)
	if err != nil {
		return fmt.Errorf("sync: write state: %w", err)
	}
	return nil
}

// serverVersion is the server's server_version_num.
func (p pgState) serverVersion(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var v int
	if err := p.pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sync: server version: %w", err)
	}
	return v, nil
}

func (p pgState) setSnapshotDone(ctx context.Context, done bool) error {
	err := p.exec(ctx, `INSERT INTO tenantgate.sync_state (slot, snapshot_done) VALUES ($1, $2)
		ON CONFLICT (slot) DO UPDATE SET snapshot_done = excluded.snapshot_done, updated_at = now()`, p.slot, done)
	if err != nil {
		return fmt.Errorf("sync: write state: %w", err)
	}
	return nil
}

// checkpointRetention is how long applied positions stay queryable; the
// newest one is always kept.
const checkpointRetention = time.Hour

// The sync's bookkeeping of how far it has applied, and the one ordering
// rule its readers rely on. The writer is this file and the stream
// (pgState.checkpoint, pgState.setSnapshotDone, the stream's status
// updates); the readers are AppliedReader's Applied and Progress below,
// which a gateway in another process than the sync uses to serve waits and
// its floor.
//
// A checkpoint is committed before the slot confirms its position: the
// sync confirms a position to the slot only after the checkpoint covering
// every change before it is committed (between transactions of no synced
// table it confirms without one: there was nothing to apply). So a
// confirmed position means the newest checkpoint's token covers every
// write up to it. For that inference to hold a reader reads the slot first
// and the checkpoints in a later statement, whose snapshot then includes
// the checkpoint committed before the confirmation the first statement saw.

// checkpoint records that every commit up to lsn is in SpiceDB as of token.
// It commits before the stream confirms lsn to the slot (see above).
func (p pgState) checkpoint(ctx context.Context, lsn authz.LSN, token string) error {
	err := p.exec(ctx, `INSERT INTO tenantgate.sync_checkpoints (slot, lsn, zed_token) VALUES ($1, $2, $3)
		ON CONFLICT (slot, lsn) DO UPDATE SET zed_token = excluded.zed_token, applied_at = now()`,
		p.slot, lsn.String(), token)
	if err != nil {
		return fmt.Errorf("sync: checkpoint: %w", err)
	}
	return nil
}

// pruneCheckpoints drops checkpoints older than checkpointRetention but the
// newest. It scans the slot's rows, so it runs on a timer, not per write.
func (p pgState) pruneCheckpoints(ctx context.Context) error {
	err := p.exec(ctx, `DELETE FROM tenantgate.sync_checkpoints WHERE slot = $1
		AND applied_at < now() - make_interval(secs => $2)
		AND lsn < (SELECT max(lsn) FROM tenantgate.sync_checkpoints WHERE slot = $1)`,
		p.slot, checkpointRetention.Seconds())
	if err != nil {
		return fmt.Errorf("sync: prune checkpoints: %w", err)
	}
	return nil
}

// deadLetter records a row the sync could not map; seeing it again only
// bumps its counters.
func (p pgState) deadLetter(ctx context.Context, s skippedRow, lsn authz.LSN) error {
	data, err := json.Marshal(s.row)
	if err != nil {
		return fmt.Errorf("sync: dead letter: %w", err)
	}
	var at *string
	if lsn != 0 {
		v := lsn.String()
		at = &v
	}
	err = p.exec(ctx, `INSERT INTO tenantgate.sync_dead_letters (source_table, row_id, reason, row_data, lsn)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (source_table, row_id, reason) DO UPDATE
		SET last_seen = now(), times_seen = sync_dead_letters.times_seen + 1, row_data = excluded.row_data, lsn = excluded.lsn`,
		s.table, s.row["id"], s.err.Error(), data, at)
	if err != nil {
		return fmt.Errorf("sync: dead letter: %w", err)
	}
	return nil
}

// walGeometry reads the server's WAL page and segment size.
func (p pgState) walGeometry(ctx context.Context) (wal.Geometry, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	g, err := wal.ReadGeometry(ctx, p.pool)
	if err != nil {
		return wal.Geometry{}, fmt.Errorf("sync: %w", classify(err, authz.ErrUnavailable))
	}
	return g, nil
}

// walInsertEnd is the server's WAL insert position, as the end of the last
// record written (see wal.Geometry.RecordEnd).
func (p pgState) walInsertEnd(ctx context.Context, g wal.Geometry) (authz.LSN, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	lsn, err := wal.InsertEnd(ctx, p.pool, g)
	if err != nil {
		return 0, fmt.Errorf("sync: %w: %w", authz.ErrUnavailable, err)
	}
	return lsn, nil
}

// heartbeat writes a little WAL in this database, so that an idle slot sees
// its position move and can confirm it instead of pinning WAL that other
// databases on the server keep writing.
func (p pgState) heartbeat(ctx context.Context) error {
	return p.exec(ctx, `SELECT pg_logical_emit_message(false, 'tenantgate-heartbeat', '')`)
}

// Progress is how far the sync of one slot has carried Postgres into
// SpiceDB, as its bookkeeping says.
type Progress struct {
	// SnapshotDone is true once the slot's initial snapshot is in SpiceDB.
	SnapshotDone bool
	// Token is the ZedToken of the newest applied checkpoint; a read at
	// least as fresh as it sees every change the sync has applied.
	Token string
	// Checkpoint is the WAL position of that checkpoint: every transaction
	// that ended at or before it is in SpiceDB at Token.
	Checkpoint authz.LSN
}

// Applied is the applied position of the sync of one slot, as read by
// AppliedReader.Applied.
type Applied struct {
	Progress
	// through is the position up to which every transaction is in SpiceDB,
	// zero while none is known to be.
	through  authz.LSN
	geometry wal.Geometry
}

// Covers reports whether every transaction that ended at or before lsn (a
// position read with pg_current_wal_insert_lsn() after a commit) is
// applied.
func (a Applied) Covers(lsn authz.LSN) bool {
	return a.through > 0 && a.geometry.RecordEnd(lsn) <= a.through
}

// AppliedReader reads the applied position of the sync on one slot from
// another process than the sync's: it is how a remote gateway serves
// waits and its floor, and knows it has caught up.
type AppliedReader struct {
	db   wal.Querier
	slot string
	// geometry is the server's WAL page and segment size, read once: a
	// gateway reads Applied every few milliseconds while reads wait, and
	// the sizes are fixed when the cluster is made.
	geometry atomic.Pointer[wal.Geometry]
}

// NewAppliedReader reads the sync of slot through db.
func NewAppliedReader(db wal.Querier, slot string) *AppliedReader {
	return &AppliedReader{db: db, slot: slot}
}

// WALPosition is the server's WAL insert position: past the end of every
// commit that has returned, whoever's connection made it.
func (r *AppliedReader) WALPosition(ctx context.Context) (authz.LSN, error) {
	return wal.InsertPosition(ctx, r.db)
}

func (r *AppliedReader) walGeometry(ctx context.Context) (wal.Geometry, error) {
	if g := r.geometry.Load(); g != nil {
		return *g, nil
	}
	g, err := wal.ReadGeometry(ctx, r.db)
	if err != nil {
		return wal.Geometry{}, err
	}
	r.geometry.Store(&g)
	return g, nil
}

// Progress reads the newest checkpoint of the sync (a zero Checkpoint if
// it has none).
func (r *AppliedReader) Progress(ctx context.Context) (p Progress, err error) {
	err = r.db.QueryRow(ctx, `select
			coalesce((select snapshot_done from tenantgate.sync_state where slot = $1), false),
			coalesce(c.zed_token, ''), coalesce(c.lsn, '0/0')
		from (select) one left join lateral (
			select zed_token, lsn from tenantgate.sync_checkpoints where slot = $1 order by lsn desc limit 1) c on true`,
		r.slot).Scan(&p.SnapshotDone, &p.Token, &p.Checkpoint)
	if err != nil {
		return Progress{}, fmt.Errorf("sync progress of %s: %w", r.slot, err)
	}
	return p, nil
}

// Applied reads how far the sync has applied. A position is applied once
// the slot's initial snapshot is complete and the slot's
// confirmed_flush_lsn or one of its checkpoints is at or past it; the slot
// is read first, the checkpoints in a later statement (see the ordering
// rule above pgState.checkpoint).
func (r *AppliedReader) Applied(ctx context.Context) (Applied, error) {
	geometry, err := r.walGeometry(ctx)
	if err != nil {
		return Applied{}, fmt.Errorf("sync applied: %w", err)
	}
	// No slot, or one without a confirmed position, is zero.
	var slotAt authz.LSN
	err = r.db.QueryRow(ctx, `select coalesce(confirmed_flush_lsn, '0/0') from pg_replication_slots
		where slot_name = $1 and database = current_database()`, r.slot).Scan(&slotAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Applied{}, fmt.Errorf("sync applied: read slot %s: %w", r.slot, err)
	}
	p, err := r.Progress(ctx)
	if err != nil {
		return Applied{}, fmt.Errorf("sync applied: %w", err)
	}
	a := Applied{Progress: p, geometry: geometry}
	a.through = appliedThrough(p, slotAt)
	return a, nil
}

// appliedThrough is the position up to which every transaction is in
// SpiceDB, given the sync's progress and its slot's confirmed position.
// Without a token no read could be made fresh enough: nothing is. A slot
// being made anew reports its start as confirmed before the snapshot
// behind it is in SpiceDB, so until that snapshot is done only the
// checkpoints count: those of an earlier slot stay true of a SpiceDB that
// is reconciled in place (the sync drops them when SpiceDB is empty), and
// they keep a re-snapshot from taking the gateways down while it leaves
// the staleness bound to judge changes made since.
func appliedThrough(p Progress, slotAt authz.LSN) authz.LSN {
	switch {
	case p.Token == "":
		return 0
	case p.SnapshotDone:
		return max(slotAt, p.Checkpoint)
	default:
		return p.Checkpoint
	}
}
