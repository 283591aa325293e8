package app

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/store"
)

var _ gateway.AppliedWaiter = (*pastPositions)(nil)

// pastPositions refuses a consistency token that names a WAL position the
// database has not reached: no write of this database answered with it, and
// waiting for the sync to apply it would hold the request for the whole
// --consistency-wait and keep the gateway polling. Positions at or below
// one already read pass without a query. It stays beside the wiring rather
// than in mirror with the waits it guards: it answers
// gateway.ErrPositionAhead, and the sync must not import the HTTP gateway.
type pastPositions struct {
	gateway.AppliedWaiter
	store *store.Store
	// reached is the highest WAL position read so far.
	reached atomic.Uint64
}

// AwaitApplied implements gateway.AppliedWaiter.
func (f *pastPositions) AwaitApplied(ctx context.Context, lsn authz.LSN) (string, error) {
	if uint64(lsn) > f.reached.Load() {
		pos, err := f.store.WALPosition(ctx)
		if err != nil {
			return "", err
		}
		// A racing reader may store an older position: that costs a
		// query later, never a wrong answer.
		f.reached.Store(uint64(pos))
		if lsn > pos {
			return "", fmt.Errorf("%w: %s, the database is at %s", gateway.ErrPositionAhead, lsn, pos)
		}
	}
	return f.AppliedWaiter.AwaitApplied(ctx, lsn)
}
