package spicedb

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// refusals are the SpiceDB answers that are about the request rather than
// SpiceDB's health, worded for the caller: only a malformed request of the
// caller's (a bad consistency token, a cursor that does not parse) and an
// import of a relationship SpiceDB holds already.
var refusals = map[codes.Code]struct {
	kind  error
	words string
}{
	codes.InvalidArgument: {authz.ErrInvalid, "the permission index cannot read the request"},
	codes.AlreadyExists:   {authz.ErrConflict, "the relationship exists already"},
}

// translate maps a SpiceDB failure onto the domain's error kinds. A refusal
// gets our own words (authz.Hide), since SpiceDB's message names its
// schema and objects; everything else means SpiceDB could not answer, which
// callers treat as a deny and never show, so its message keeps SpiceDB's
// text for every log.
func translate(op string, err error) error {
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		s, _ := status.FromError(err)
		if r, ok := refusals[s.Code()]; ok {
			return fmt.Errorf("spicedb: %s: %w", op, authz.Hide(r.kind, r.words, err))
		}
	}
	return fmt.Errorf("spicedb: %s: %w: %w", op, authz.ErrUnavailable, err)
}
