package app

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/store"
)

var _ gateway.AppliedWaiter = (*pastPositions)(nil)

// reachedTrust is how long a database position read stays the one tokens
// are compared with. The point is the timeline: the likeliest token of an
// earlier one names a write just before a failover, which a read has
// often compared with a position of that timeline already; were that
// position trusted for ever, the token would pass until a token of the new
// timeline came. An unplanned failover, the kind that loses writes, takes
// longer than this to detect and promote, and a restore far longer, so no
// position read before one is still trusted after it; and waiting reads
// cost at most one query a second.
const reachedTrust = time.Second

// lsnWaiter waits for the sync to apply a WAL position (mirror.Syncer,
// mirror.SlotWaits): the sync follows whatever timeline the database is
// on, so an LSN is all it needs.
type lsnWaiter interface {
	AwaitApplied(ctx context.Context, lsn authz.LSN) (zedToken string, err error)
}

// pastPositions refuses a consistency token that names a WAL position the
// database has not reached: no write of this database answered with it, and
// waiting for the sync to apply it would hold the request for the whole
// --consistency-wait and keep the gateway polling. It refuses one of an
// earlier timeline too, whatever its LSN: the write it names may be one the
// database lost in a failover or a restore, and the WAL of its new history
// passes that LSN all the same. Positions at or below one read within
// reachedTrust, on its timeline, pass without a query. It stays beside the
// wiring rather than in mirror with the waits it guards: it answers gateway
// errors, and the sync must not import the HTTP gateway.
type pastPositions struct {
	waits lsnWaiter
	store *store.Store
	// reached is the latest database position read so far (nil: none).
	reached atomic.Pointer[reading]
}

// reading is a database position and when it was read.
type reading struct {
	authz.Position
	at time.Time
}

// AwaitApplied implements gateway.AppliedWaiter.
func (f *pastPositions) AwaitApplied(ctx context.Context, pos authz.Position) (string, error) {
	db := f.reached.Load()
	if db == nil || time.Since(db.at) > reachedTrust || pos.LSN > db.LSN || pos.Timeline > db.Timeline {
		read, err := f.store.WALPosition(ctx)
		if err != nil {
			return "", err
		}
		db = f.reach(&reading{Position: read, at: time.Now()})
	}
	switch {
	case pos.Timeline > db.Timeline:
		return "", fmt.Errorf("%w: timeline %d, the database is on timeline %d", gateway.ErrPositionAhead, pos.Timeline, db.Timeline)
	case pos.Timeline != 0 && pos.Timeline < db.Timeline:
		return "", &gateway.EarlierTimelineError{Timeline: db.Timeline}
	case pos.LSN > db.LSN:
		return "", fmt.Errorf("%w: %s, the database is at %s", gateway.ErrPositionAhead, pos, db.Position)
	}
	return f.waits.AwaitApplied(ctx, pos.LSN)
}

// reach records read, unless a racing reader recorded a later position
// meanwhile, and returns the one recorded. Timelines only grow: keeping a
// position of an earlier one over a later one would let its tokens pass.
func (f *pastPositions) reach(read *reading) *reading {
	for {
		old := f.reached.Load()
		if old != nil && (old.Timeline > read.Timeline || old.Timeline == read.Timeline && old.LSN > read.LSN) {
			return old
		}
		if f.reached.CompareAndSwap(old, read) {
			return read
		}
	}
}
