package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	kinds := []error{authz.ErrConflict, authz.ErrNotFound, authz.ErrInvalid, authz.ErrUnavailable}
	tests := []struct {
		name string
		err  error
		want error // nil: no kind
	}{
		{"unique violation", &pgconn.PgError{Code: "23505"}, authz.ErrConflict},
		{"parent cycle", &pgconn.PgError{Code: codeParentCycle}, authz.ErrConflict},
		{"tree too deep", &pgconn.PgError{Code: codeTreeTooDeep}, authz.ErrConflict},
		{"foreign key violation", &pgconn.PgError{Code: "23503"}, authz.ErrNotFound},
		{"check violation", &pgconn.PgError{Code: "23514"}, authz.ErrInvalid},
		{"not null violation", &pgconn.PgError{Code: "23502"}, authz.ErrInvalid},
		{"value too long", &pgconn.PgError{Code: "22001"}, authz.ErrInvalid},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, authz.ErrUnavailable},
		{"starting up", &pgconn.PgError{Code: "57P03"}, authz.ErrUnavailable},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, authz.ErrUnavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, authz.ErrUnavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, authz.ErrUnavailable},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, nil},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, authz.ErrUnavailable},
		{"connection cut", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), authz.ErrUnavailable},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), authz.ErrUnavailable},
		{"closed pool", puddle.ErrClosedPool, authz.ErrUnavailable},
		{"caller gone", fmt.Errorf("query: %w", context.Canceled), nil},
		{"other", errors.New("boom"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("translate(%v) = %v, lost the original error", tt.err, got)
			}
			for _, kind := range kinds {
				if is, want := errors.Is(got, kind), kind == tt.want; is != want {
					t.Errorf("errors.Is(translate(%v), %v) = %v, want %v", tt.err, kind, is, want)
				}
			}
		})
	}
	if translate(nil) != nil {
		t.Error("translate(nil) != nil")
	}
}

// TestTranslateWordsWhatTheCallerSees: a kind the caller is shown comes
// with our words, never PostgreSQL's, which stay in the chain and in
// authz.Cause for the log; unavailability, never shown, keeps them.
func TestTranslateWordsWhatTheCallerSees(t *testing.T) {
	t.Parallel()
	const pgText = `new row for relation "company_memberships" violates check constraint "company_memberships_role_check"`
	tests := []struct {
		name, code string
		hidden     bool
	}{
		{"unique violation", "23505", true},
		{"parent cycle", codeParentCycle, true},
		{"foreign key violation", "23503", true},
		{"check violation", "23514", true},
		{"not null violation", "23502", true},
		{"NUL byte", "22021", true},
		{"statement timeout", "57014", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pgErr := &pgconn.PgError{Code: tt.code, Message: pgText}
			got := translate(fmt.Errorf("insert: %w", pgErr))
			var as *pgconn.PgError
			if !errors.As(got, &as) || as != pgErr {
				t.Errorf("translate lost the PostgreSQL error: %v", got)
			}
			if shown := strings.Contains(got.Error(), "violates"); shown == tt.hidden {
				t.Errorf("message %q: shows PostgreSQL's text = %v, want %v", got, shown, !tt.hidden)
			}
			if cause := authz.Cause(got); tt.hidden != strings.Contains(cause, "violates") {
				t.Errorf("authz.Cause = %q, want PostgreSQL's text: %v", cause, tt.hidden)
			}
		})
	}
}

func TestConnectHint(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"bad password", &pgconn.PgError{Code: "28P01"}, "password"},
		{"pg_hba replication", &pgconn.PgError{Code: "28000", Message: "no pg_hba.conf entry for replication connection"}, "replication connections"},
		{"pg_hba", &pgconn.PgError{Code: "28000", Message: "no pg_hba.conf entry for host"}, "refused the login"},
		{"no database", &pgconn.PgError{Code: "3D000"}, "does not exist"},
		{"too many connections", &pgconn.PgError{Code: "53300"}, ""},
		{"not postgres", errors.New("boom"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ConnectHint(tc.err)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("ConnectHint = %q, want one naming %q", got, tc.want)
			}
		})
	}
}
