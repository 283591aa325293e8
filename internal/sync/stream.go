package sync

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// streamState is what the stream loop carries between messages.
type streamState struct {
	relations map[uint32]*pglogrepl.RelationMessage
	// applied is the end of the last transaction whose updates the target
	// holds: the only position ever confirmed to Postgres.
	applied pglogrepl.LSN
	inTx    bool
	pending []authz.Update
}

// stream follows the slot from start until ctx ends or the stream fails.
// pgoutput protocol 1 never streams transactions in progress, so every
// change arrives between its transaction's Begin and Commit.
func (s *Syncer) stream(ctx context.Context, repl *pgconn.PgConn, slot string, start pglogrepl.LSN) error {
	err := pglogrepl.StartReplication(ctx, repl, slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", s.cfg.Publication)},
	})
	if err != nil {
		return fmt.Errorf("sync: start replication (has `tenantgate migrate` created publication %q?): %w", s.cfg.Publication, err)
	}
	s.ready.Store(true)
	st := &streamState{relations: map[uint32]*pglogrepl.RelationMessage{}, applied: start}
	s.metrics.appliedLSN.Set(float64(start))
	nextStatus := time.Now()
	for {
		if !time.Now().Before(nextStatus) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: st.applied}); err != nil {
				return fmt.Errorf("sync: standby status: %w", err)
			}
			nextStatus = time.Now().Add(s.cfg.StatusInterval)
		}
		recvCtx, cancel := context.WithDeadline(ctx, nextStatus)
		msg, err := repl.ReceiveMessage(recvCtx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			return fmt.Errorf("sync: receive: %w: %w", authz.ErrUnavailable, err)
		}
		replyNow, err := s.handle(ctx, st, msg)
		if err != nil {
			return err
		}
		if replyNow {
			nextStatus = time.Now()
		}
	}
}

// handle processes one message from the server; replyNow asks for an
// immediate status report.
func (s *Syncer) handle(ctx context.Context, st *streamState, msg pgproto3.BackendMessage) (replyNow bool, err error) {
	switch msg := msg.(type) {
	case *pgproto3.ErrorResponse:
		return false, fmt.Errorf("sync: server error: %w", pgconn.ErrorResponseToPgError(msg))
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
			// Between transactions every change up to the server's WAL end
			// has been received and applied, so confirming it is safe and
			// keeps an idle slot from pinning WAL.
			if !st.inTx && ka.ServerWALEnd > st.applied {
				st.applied = ka.ServerWALEnd
			}
			return ka.ReplyRequested, nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("sync: xlogdata: %w", err)
			}
			return false, s.handleLogical(ctx, st, xld.WALData)
		}
	}
	return false, nil
}

func (s *Syncer) handleLogical(ctx context.Context, st *streamState, data []byte) error {
	lm, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("sync: decode pgoutput: %w", err)
	}
	switch m := lm.(type) {
	case *pglogrepl.RelationMessage:
		st.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		st.inTx = true
	case *pglogrepl.InsertMessage:
		return s.queue(ctx, st, m.RelationID, nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		if m.OldTupleType != pglogrepl.UpdateMessageTupleTypeOld {
			return s.missingOldRow(st, m.RelationID)
		}
		return s.queue(ctx, st, m.RelationID, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		if m.OldTupleType != pglogrepl.DeleteMessageTupleTypeOld {
			return s.missingOldRow(st, m.RelationID)
		}
		return s.queue(ctx, st, m.RelationID, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		return s.truncate(ctx, st, m.RelationIDs)
	case *pglogrepl.CommitMessage:
		return s.commit(ctx, st, m)
	}
	return nil
}

// queue adds a row change to the open transaction, flushing early when the
// transaction grows past one batch so memory stays bounded.
func (s *Syncer) queue(ctx context.Context, st *streamState, relID uint32, oldTuple, newTuple *pglogrepl.TupleData) error {
	rel, ok := st.relations[relID]
	if !ok {
		return fmt.Errorf("sync: change for unknown relation %d", relID)
	}
	updates, skipped := change(rel.RelationName, decodeTuple(rel, oldTuple), decodeTuple(rel, newTuple))
	s.skip(skipped)
	st.pending = append(st.pending, updates...)
	if len(st.pending) >= maxBatch {
		if err := s.apply(ctx, st.pending); err != nil {
			return err
		}
		st.pending = st.pending[:0]
	}
	return nil
}

// missingOldRow fails the stream: without REPLICA IDENTITY FULL an update or
// delete does not say which relationship to remove, and guessing could leave
// access in place.
func (s *Syncer) missingOldRow(st *streamState, relID uint32) error {
	name := "unknown"
	if rel, ok := st.relations[relID]; ok {
		name = rel.RelationName
	}
	return fmt.Errorf("sync: %s change without its old row: run `tenantgate migrate` (it sets REPLICA IDENTITY FULL)", name)
}

func (s *Syncer) truncate(ctx context.Context, st *streamState, relIDs []uint32) error {
	if err := s.apply(ctx, st.pending); err != nil {
		return err
	}
	st.pending = st.pending[:0]
	var relations []string
	for _, id := range relIDs {
		if rel, ok := st.relations[id]; ok {
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

func (s *Syncer) commit(ctx context.Context, st *streamState, m *pglogrepl.CommitMessage) error {
	if err := s.apply(ctx, st.pending); err != nil {
		return err
	}
	st.pending = st.pending[:0]
	st.inTx = false
	st.applied = m.TransactionEndLSN
	s.metrics.transactions.Inc()
	s.metrics.appliedLSN.Set(float64(m.TransactionEndLSN))
	s.metrics.lag.Set(time.Since(m.CommitTime).Seconds())
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
