package spicedb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// TestTranslateWordsWhatTheCallerSees: a refusal the caller is shown comes
// with our words, never SpiceDB's, which stay in the chain and in
// authz.Cause for the log; unavailability, never shown, keeps them.
func TestTranslateWordsWhatTheCallerSees(t *testing.T) {
	const spiceText = `object definition "company" has no relation or permission "secret_relation"`
	tests := []struct {
		name   string
		err    error
		want   error
		hidden bool
	}{
		{"invalid argument", status.Error(codes.InvalidArgument, spiceText), authz.ErrInvalid, true},
		{"already exists", status.Error(codes.AlreadyExists, spiceText), authz.ErrConflict, true},
		{"unavailable", status.Error(codes.Unavailable, spiceText), authz.ErrUnavailable, false},
		{"internal", status.Error(codes.Internal, spiceText), authz.ErrUnavailable, false},
		{"deadline", fmt.Errorf("%s: %w", spiceText, context.DeadlineExceeded), authz.ErrUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate("check", tt.err)
			if !errors.Is(got, tt.want) || !errors.Is(got, tt.err) {
				t.Errorf("translate = %v, want kind %v with the cause in the chain", got, tt.want)
			}
			if shown := strings.Contains(got.Error(), "secret_relation"); shown == tt.hidden {
				t.Errorf("message %q: shows SpiceDB's text = %v, want %v", got, shown, !tt.hidden)
			}
			if cause := authz.Cause(got); tt.hidden != strings.Contains(cause, "secret_relation") {
				t.Errorf("authz.Cause = %q, want SpiceDB's text: %v", cause, tt.hidden)
			}
		})
	}
}
