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
// does not parse) is ErrInvalid, an import of a relationship SpiceDB holds
// already is ErrConflict; everything else means SpiceDB could not answer,
// which callers treat as a deny.
func translate(op string, err error) error {
	kind := authz.ErrUnavailable
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	default:
		switch s, _ := status.FromError(err); s.Code() {
		case codes.InvalidArgument:
			kind = authz.ErrInvalid
		case codes.AlreadyExists:
			kind = authz.ErrConflict
		}
	}
	return fmt.Errorf("spicedb: %s: %w: %w", op, kind, err)
}
