package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
