package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// streamState is what the stream loop carries between messages.
type streamState struct {
	relations map[uint32]*pglogrepl.RelationMessage
	// confirmed is the end of the last transaction the target holds, the
	// only position ever reported to Postgres as flushed.
	confirmed authz.LSN
	// committed is the end of the last transaction received whole; its
	// updates may still wait in pending.
	committed authz.LSN
	// serverEnd is the newest WAL position a keepalive reported; the
	// server had sent everything before it.
	serverEnd authz.LSN
	// reported is the position last sent to Postgres in a status update.
	reported authz.LSN
	// oldestCommit is the commit time of the oldest transaction in pending.
	oldestCommit time.Time
	// pendingSince is when the oldest unflushed change arrived.
	pendingSince time.Time
	inTx         bool
	pending      []authz.Update
	// readyAt is the server's WAL position when the stream began: once it
	// is confirmed, the target holds every change committed before, and
	// the sync is ready.
	readyAt authz.LSN
	began   time.Time
	// transactions counts transactions received, for the progress log.
	transactions int64
}

// unflushed reports whether anything received is not yet written and
// confirmed.
func (ss *streamState) unflushed() bool {
	return len(ss.pending) > 0 || ss.committed > ss.confirmed
}

// catchUp confirms the server's WAL end once everything received before it
// is applied: between transactions with nothing pending, the WAL up to
// there held no change the target lacks (WAL of other tables, other
// databases, logical messages). This is what lets a reader who passes a
// position read after its commit (which other WAL may follow) see it
// applied, and keeps an idle slot from pinning WAL. It writes nothing to
// Postgres, so it cannot feed the stream it follows.
func (ss *streamState) catchUp() bool {
	if ss.inTx || ss.unflushed() || ss.serverEnd <= ss.confirmed {
		return false
	}
	ss.confirmed, ss.committed = ss.serverEnd, ss.serverEnd
	return true
}

// markUnflushed starts the flush clock when the first unflushed change
// arrives.
func (ss *streamState) markUnflushed() {
	if !ss.unflushed() {
		ss.pendingSince = time.Now()
	}
}

// stream follows the slot from start (zero: the slot's own position) until
// ctx ends or the stream fails. pgoutput protocol 1 never streams
// transactions in progress, so every change arrives between its
// transaction's Begin and Commit.
func (s *Syncer) stream(ctx context.Context, repl *pgconn.PgConn, st pgState, lock *activeLock, start authz.LSN) error {
	// Read before the stream starts, so it lies past every commit that
	// returned before: changes made while the snapshot was copied, or the
	// backlog a resumed slot holds.
	readyAt, err := st.walInsertEnd(ctx, s.geometry())
	if err != nil {
		return err
	}
	err = pglogrepl.StartReplication(ctx, repl, st.slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", s.cfg.Publication)},
	})
	if err != nil {
		return fmt.Errorf("sync: start replication on slot %s with publication %s: %w", st.slot, s.cfg.Publication, classify(err, nil))
	}
	s.setActive(true)
	ss := &streamState{relations: map[uint32]*pglogrepl.RelationMessage{}, confirmed: start, committed: start,
		readyAt: readyAt, began: time.Now()}
	// A fresh snapshot holds everything before its slot's start (zero, a
	// resumed slot, is learnt from the first keepalive).
	s.setApplied(start)
	s.readyIfCaughtUp(ss)
	sendStatus := func() error {
		err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: pglogrepl.LSN(ss.confirmed)})
		if err == nil {
			ss.reported = ss.confirmed
		}
		return err
	}
	nextStatus := time.Now()
	nextReconcile := s.scheduleReconcile(time.Now())
	progress := newStreamProgress(s.cfg.Logger, start)
	for {
		// Every advance is reported at once, not at the next status
		// interval: Postgres answers a report that is behind what it has
		// sent with a keepalive naming its WAL end, which catchUp confirms,
		// and a reader waiting for a position past its own commit (remote
		// gateways read the slot's confirmed position) is answered in a
		// round trip instead of up to StatusInterval. A report writes no
		// WAL, so once it is current the exchange stops.
		if ss.confirmed > ss.reported {
			if err := sendStatus(); err != nil {
				return fmt.Errorf("sync: standby status: %w: %w", authz.ErrUnavailable, err)
			}
		}
		now := time.Now()
		if !now.Before(nextStatus) {
			if err := sendStatus(); err != nil {
				return fmt.Errorf("sync: standby status: %w: %w", authz.ErrUnavailable, err)
			}
			if err := s.housekeeping(ctx, st, lock, ss, sendStatus, !now.Before(nextReconcile)); err != nil {
				return err
			}
			if !now.Before(nextReconcile) {
				nextReconcile = s.scheduleReconcile(now)
			}
			progress.maybeLog(now, ss)
			nextStatus = time.Now().Add(s.cfg.StatusInterval)
		}
		// Changes wait at most FlushDelay from the first one pending, so a
		// steady stream is written in batches rather than a write per
		// transaction, and a lone change is not held back.
		deadline := nextStatus
		if ss.unflushed() && !ss.inTx {
			flushAt := ss.pendingSince.Add(s.cfg.FlushDelay)
			if !time.Now().Before(flushAt) {
				if err := s.flush(ctx, st, ss); err != nil {
					return err
				}
				continue
			}
			deadline = flushAt
		}
		recvCtx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := repl.ReceiveMessage(recvCtx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			return fmt.Errorf("sync: receive: %w: %w", authz.ErrUnavailable, err)
		}
		replyNow, err := s.handle(ctx, st, ss, msg)
		if err != nil {
			return err
		}
		if replyNow {
			nextStatus = time.Now()
		}
	}
}

func (s *Syncer) scheduleReconcile(from time.Time) time.Time {
	if s.cfg.ReconcileInterval <= 0 || !s.cfg.Persistent {
		return from.Add(100 * 365 * 24 * time.Hour)
	}
	return from.Add(s.cfg.ReconcileInterval)
}

// housekeeping runs at every status interval: it checks that this sync is
// still the active one and carries out reconcile requests, which must not
// run concurrently with the stream.
func (s *Syncer) housekeeping(ctx context.Context, st pgState, lock *activeLock, ss *streamState, sendStatus func() error, scheduled bool) error {
	if lock == nil {
		return nil
	}
	if err := lock.alive(ctx); err != nil {
		return err
	}
	if time.Since(s.lastPrune) > checkpointPruneEvery {
		if err := st.pruneCheckpoints(ctx); err != nil {
			return err
		}
		s.lastPrune = time.Now()
	}
	if scheduled {
		if _, err := st.requestReconcile(ctx, "schedule"); err != nil {
			return err
		}
	}
	if ss.inTx {
		return nil
	}
	if err := s.flush(ctx, st, ss); err != nil {
		return err
	}
	return s.runClaimed(ctx, st, sendStatus)
}

// handle processes one message from the server; replyNow asks for an
// immediate status report.
func (s *Syncer) handle(ctx context.Context, st pgState, ss *streamState, msg pgproto3.BackendMessage) (replyNow bool, err error) {
	switch msg := msg.(type) {
	case *pgproto3.ErrorResponse:
		return false, fmt.Errorf("sync: server error: %w", classify(pgconn.ErrorResponseToPgError(msg), nil))
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return false, nil
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("sync: keepalive: %w", err)
			}
			// Pending changes are left to their flush deadline, which
			// catches up to this end afterwards: flushing at every keepalive
			// halved the batches.
			ss.serverEnd = max(ss.serverEnd, authz.LSN(ka.ServerWALEnd))
			if ss.catchUp() {
				s.publishConfirmed(ss)
			}
			return ka.ReplyRequested, nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("sync: xlogdata: %w", err)
			}
			return false, s.handleLogical(ctx, st, ss, xld.WALData)
		}
	}
	return false, nil
}

func (s *Syncer) handleLogical(ctx context.Context, st pgState, ss *streamState, data []byte) error {
	lm, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("sync: decode pgoutput: %w", err)
	}
	switch m := lm.(type) {
	case *pglogrepl.RelationMessage:
		ss.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		ss.inTx = true
		if len(ss.pending) == 0 {
			ss.oldestCommit = m.CommitTime
		}
	case *pglogrepl.InsertMessage:
		return s.queue(ctx, ss, m.RelationID, nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		if m.OldTupleType != pglogrepl.UpdateMessageTupleTypeOld {
			return missingOldRow(ss, m.RelationID)
		}
		return s.queue(ctx, ss, m.RelationID, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		if m.OldTupleType != pglogrepl.DeleteMessageTupleTypeOld {
			return missingOldRow(ss, m.RelationID)
		}
		return s.queue(ctx, ss, m.RelationID, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		return s.truncate(ctx, ss, m.RelationIDs)
	case *pglogrepl.CommitMessage:
		ss.inTx = false
		ss.markUnflushed()
		ss.committed = authz.LSN(m.TransactionEndLSN)
		ss.transactions++
		s.metrics.transactions.Inc()
		if len(ss.pending) >= maxBatch {
			return s.flush(ctx, st, ss)
		}
	}
	return nil
}

// queue adds a row change to the batch, writing early when a transaction
// grows past one batch so memory stays bounded. Such a transaction reaches
// SpiceDB in several writes; its position is confirmed only after the last.
func (s *Syncer) queue(ctx context.Context, ss *streamState, relID uint32, oldTuple, newTuple *pglogrepl.TupleData) error {
	rel, ok := ss.relations[relID]
	if !ok {
		return fmt.Errorf("sync: change for unknown relation %d", relID)
	}
	updates, skipped := change(rel.RelationName, decodeTuple(rel, oldTuple), decodeTuple(rel, newTuple))
	s.skip(ctx, skipped, ss.committed)
	if len(updates) > 0 {
		ss.markUnflushed()
	}
	ss.pending = append(ss.pending, updates...)
	if len(ss.pending) >= 2*maxBatch {
		if err := s.apply(ctx, ss.pending); err != nil {
			return err
		}
		ss.pending = ss.pending[:0]
	}
	return nil
}

// flush writes what is pending and, at a transaction boundary, records and
// confirms the position it covers.
func (s *Syncer) flush(ctx context.Context, st pgState, ss *streamState) error {
	if ss.inTx {
		return nil
	}
	if len(ss.pending) > 0 {
		if err := s.apply(ctx, ss.pending); err != nil {
			return err
		}
		ss.pending = ss.pending[:0]
		s.metrics.lag.Set(time.Since(ss.oldestCommit).Seconds())
	}
	if ss.committed <= ss.confirmed {
		return nil
	}
	// The checkpoint commits before the slot confirms its position (the
	// ordering rule in state.go, which remote gateways rely on).
	if s.cfg.Persistent {
		if err := st.checkpoint(ctx, ss.committed, s.LatestToken()); err != nil {
			return err
		}
	}
	ss.confirmed = ss.committed
	// A keepalive that came while changes were pending may name a later
	// end the flush has now caught up with.
	ss.catchUp()
	s.publishConfirmed(ss)
	return nil
}

// publishConfirmed publishes a new confirmed position: metrics, waiters in
// AwaitApplied and readiness. The stream loop reports it to Postgres before
// it waits for the next message.
func (s *Syncer) publishConfirmed(ss *streamState) {
	s.metrics.appliedLSN.Set(float64(ss.confirmed))
	s.setApplied(ss.confirmed)
	s.readyIfCaughtUp(ss)
}

func (s *Syncer) readyIfCaughtUp(ss *streamState) {
	if ss.confirmed >= ss.readyAt && !s.Ready() {
		s.setReady(true)
		s.cfg.Logger.Info("sync: caught up; ready", "lsn", ss.confirmed.String(), "after", time.Since(ss.began))
	}
}

// missingOldRow fails the stream: without REPLICA IDENTITY FULL an update or
// delete does not say which relationship to remove, and guessing could leave
// access in place.
func missingOldRow(ss *streamState, relID uint32) error {
	name := "unknown"
	if rel, ok := ss.relations[relID]; ok {
		name = rel.RelationName
	}
	return fmt.Errorf("sync: %s change without its old row: run `tenantgate migrate` (it sets REPLICA IDENTITY FULL)", name)
}

func (s *Syncer) truncate(ctx context.Context, ss *streamState, relIDs []uint32) error {
	if err := s.apply(ctx, ss.pending); err != nil {
		return err
	}
	ss.pending = ss.pending[:0]
	var relations []string
	for _, id := range relIDs {
		if rel, ok := ss.relations[id]; ok {
			relations = append(relations, relationsOf(rel.RelationName)...)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	token, err := s.target.DeleteRelations(wctx, relations)
	if err != nil {
		return fmt.Errorf("sync: truncate: %w", err)
	}
	s.recordToken(token)
	s.cfg.Logger.Info("sync: truncate applied", "relations", relations)
	return nil
}

// decodeTuple turns a pgoutput tuple into a row. Unchanged TOAST columns
// cannot occur with REPLICA IDENTITY FULL on these small text columns.
func decodeTuple(rel *pglogrepl.RelationMessage, t *pglogrepl.TupleData) row {
	if t == nil {
		return nil
	}
	r := row{}
	for i, col := range t.Columns {
		if i >= len(rel.Columns) || col.DataType != pglogrepl.TupleDataTypeText {
			continue
		}
		r[rel.Columns[i].Name] = string(col.Data)
	}
	return r
}

// streamProgress logs the stream's advance once a minute while there is
// any, so an operator sees the sync is alive without a log line per change.
type streamProgress struct {
	logger       *slog.Logger
	next         time.Time
	transactions int64
	confirmed    authz.LSN
}

const streamLogEvery = time.Minute

func newStreamProgress(logger *slog.Logger, start authz.LSN) *streamProgress {
	return &streamProgress{logger: logger, next: time.Now().Add(streamLogEvery), confirmed: start}
}

func (p *streamProgress) maybeLog(now time.Time, ss *streamState) {
	if now.Before(p.next) {
		return
	}
	if n := ss.transactions - p.transactions; n > 0 || ss.confirmed != p.confirmed {
		p.logger.Info("sync: streaming", "transactions", n,
			"transactions_per_second", float64(n)/streamLogEvery.Seconds(), "confirmed_lsn", ss.confirmed.String())
	}
	p.transactions, p.confirmed, p.next = ss.transactions, ss.confirmed, now.Add(streamLogEvery)
}
