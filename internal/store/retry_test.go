package store_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestManageRetriesWithinABound holds the retries of a management decision
// to their bound: a deadlock or serialisation failure is tried again, four
// passes in all, and then answered as an outage (503 with Retry-After)
// rather than a 500; any other failure is not tried again.
func TestManageRetriesWithinABound(t *testing.T) {
	t.Parallel()
	s := openStore(t, testutil.NewTestDatabase(t))
	boom := errors.New("boom")
	tests := []struct {
		name       string
		err        error
		wantPasses int
		want       error
	}{
		{"serialisation failure", &pgconn.PgError{Code: "40001"}, 4, authz.ErrUnavailable},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, 4, authz.ErrUnavailable},
		{"another failure", boom, 1, boom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			passes, err := s.ManageFailing(t.Context(), tc.err)
			if passes != tc.wantPasses {
				t.Errorf("%d passes, want %d", passes, tc.wantPasses)
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v wrapping %v", err, tc.want, tc.err)
			}
		})
	}
}
