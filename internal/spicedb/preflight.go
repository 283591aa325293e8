package spicedb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// refusedHint is the fix of the SpiceDB answers no retry can cure: a
// wrong preshared key is PermissionDenied ("invalid preshared key"), a
// missing one Unauthenticated.
const refusedHint = "SpiceDB refused the token: set --spicedb-token to a preshared key SpiceDB was started with (--grpc-preshared-key)"

// translateStartup is translate for the calls a process makes as it
// starts (the schema's): a refused token is authz.ErrInvalid with its fix,
// so the start stops with it instead of retrying for ever. Calls answering
// requests keep translate, which never blames the caller for it.
func translateStartup(op string, err error) error {
	if code := status.Code(err); code == codes.Unauthenticated || code == codes.PermissionDenied {
		return fmt.Errorf("spicedb: %s: %w: %s: %w", op, authz.ErrInvalid, refusedHint, err)
	}
	return translate(op, err)
}

// Probe tells whether SpiceDB answers with the token, with the cheapest
// call that needs it.
func (c *Client) Probe(ctx context.Context) error {
	_, err := c.ReadSchema(ctx)
	return err
}

// watchProbeWindow is how long ProbeWatch listens: a datastore that cannot
// serve Watch fails the stream at once, a healthy one sends nothing or a
// checkpoint meanwhile.
const watchProbeWindow = 2 * time.Second

// ErrWatchUnavailable is what ProbeWatch answers when SpiceDB refuses to
// stream changes: the permission index then turns itself off and every
// read goes to SpiceDB.
var ErrWatchUnavailable = errors.New("spicedb: Watch fails (on a Postgres datastore it needs track_commit_timestamp = on)")

// ProbeWatch tells whether SpiceDB streams changes, by watching from now
// for a moment.
func (c *Client) ProbeWatch(ctx context.Context) error {
	windowEnd := time.Now().Add(watchProbeWindow)
	watchCtx, cancel := context.WithDeadline(ctx, windowEnd)
	defer cancel()
	errStreams := errors.New("a checkpoint arrived")
	err := c.Watch(watchCtx, "", func([]authz.Update, string) error { return errStreams })
	switch {
	case errors.Is(err, errStreams):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case watchCtx.Err() != nil || !time.Now().Before(windowEnd):
		// Streamed the whole window without failing. (The stream can
		// report the deadline a moment before the context does.)
		return nil
	}
	// A SpiceDB whose datastore cannot watch serves no WatchService at
	// all; anything else (a refused token, an outage) is not about Watch.
	if code := status.Code(err); code == codes.Unimplemented || code == codes.FailedPrecondition {
		return fmt.Errorf("%w: %w", ErrWatchUnavailable, err)
	}
	return err
}
