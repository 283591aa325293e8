package spicedb

import (
	"context"
	"fmt"

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
