package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
func acquireLock(ctx context.Context, databaseURL, slot string, interval time.Duration, standby func()) (*activeLock, error) {
	for waited := false; ; waited = true {
		lock, err := tryLock(ctx, databaseURL, slot)
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
func tryLock(ctx context.Context, databaseURL, slot string) (*activeLock, error) {
	cfg, err := connConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sync: lock connection: %w: %w", authz.ErrUnavailable, err)
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
	err := p.pool.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, p.slot).Scan(&walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotInfo{}, nil
	}
	if err != nil {
		return slotInfo{}, fmt.Errorf("sync: read slot: %w", err)
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
		return false, fmt.Errorf("sync: read state (has `tenantgate migrate` run?): %w", err)
	}
	return done, nil
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

// checkpoint records that every commit up to lsn is in SpiceDB as of token.
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

// slotRetention is how many bytes of WAL the slot keeps on the server, and
// how far its confirmed position trails the server's WAL end.
func (p pgState) slotRetention(ctx context.Context) (retained, behind float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err = p.pool.QueryRow(ctx, `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0),
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)
		FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, p.slot).Scan(&retained, &behind)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	return retained, behind, err
}

// walGeometry reads the server's WAL page and segment size.
func (p pgState) walGeometry(ctx context.Context) (wal.Geometry, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	g, err := wal.ReadGeometry(ctx, p.pool)
	if err != nil {
		return wal.Geometry{}, fmt.Errorf("sync: %w: %w", authz.ErrUnavailable, err)
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
