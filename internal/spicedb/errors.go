package spicedb

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// translate maps a SpiceDB failure onto the domain's error kinds. Only a
// malformed request of the caller's (a bad consistency token, a cursor that
// does not parse) is ErrInvalid; everything else means SpiceDB could not
// answer, which callers treat as a deny.
func translate(op string, err error) error {
	kind := authz.ErrUnavailable
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	default:
		if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
			kind = authz.ErrInvalid
		}
	}
	return fmt.Errorf("spicedb: %s: %w: %w", op, kind, err)
}
