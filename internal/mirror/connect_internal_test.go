package mirror

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// TestConnectionsUsePasswordAsTheyConnect: every connection the sync opens,
// single ones and the pool's, logs in with the password as it is when it
// connects, or the URL's without Config.Password.
func TestConnectionsUsePasswordAsTheyConnect(t *testing.T) {
	t.Parallel()
	const dbURL = "postgres://sync:from-url@127.0.0.1:5432/app?sslmode=disable"
	var current atomic.Pointer[string]
	rotate := func(p string) { current.Store(&p) }
	fromFile := func() string { return *current.Load() }
	for _, tc := range []struct {
		name     string
		password func() string
		// want is the password after a rotation to "new".
		want string
	}{
		{"the url's password", nil, "from-url"},
		{"the file's password", fromFile, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rotate("old")
			src := source{url: dbURL, password: tc.password}
			pool, err := openPool(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			poolCfg := pool.Config()
			rotate("new")

			single, err := src.connConfig()
			if err != nil {
				t.Fatal(err)
			}
			pooled := poolCfg.ConnConfig.Copy()
			if err := poolCfg.BeforeConnect(t.Context(), pooled); err != nil {
				t.Fatal(err)
			}
			for what, cfg := range map[string]*pgconn.Config{"a single connection": &single.Config, "a pooled connection": &pooled.Config} {
				if cfg.Password != tc.want {
					t.Errorf("%s logs in with %q, want %q", what, cfg.Password, tc.want)
				}
				if cfg.ConnectTimeout != connectTimeout {
					t.Errorf("%s connects within %v, want %v", what, cfg.ConnectTimeout, connectTimeout)
				}
			}
		})
	}
}

// TestForgiveRefusedPassword: a refused password read from a file is
// retried until the refusals are passwordGrace old; one from the URL, or
// any other permanent error, is not.
func TestForgiveRefusedPassword(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("sync: lock connection: %w", classify(&pgconn.PgError{Code: "28P01", Message: "password authentication failed for user \"sync\""}, authz.ErrUnavailable))
	unknownDB := fmt.Errorf("sync: lock connection: %w", classify(&pgconn.PgError{Code: "3D000", Message: "database \"app\" does not exist"}, authz.ErrUnavailable))
	fromFile := func() string { return "secret" }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type run struct {
		err       error
		at        time.Duration
		permanent bool
	}
	for _, tc := range []struct {
		name     string
		password func() string
		runs     []run
	}{
		{"a url's password is refused for good at once", nil, []run{{refused, 0, true}}},
		{"a file's password is retried within the grace", fromFile, []run{
			{refused, 0, false}, {refused, passwordGrace - time.Second, false}, {refused, passwordGrace, true}}},
		{"a run that gets further starts the grace over", fromFile, []run{
			{refused, 0, false}, {errors.New("stream ended"), passwordGrace / 2, false},
			{refused, passwordGrace, false}, {refused, 2*passwordGrace - time.Second, false}}},
		{"a clean stop starts the grace over", fromFile, []run{
			{refused, 0, false}, {nil, passwordGrace / 2, false}, {refused, passwordGrace, false}}},
		{"other permanent errors are not forgiven", fromFile, []run{{unknownDB, 0, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &Syncer{cfg: Config{Password: tc.password}}
			for i, r := range tc.runs {
				err := s.forgiveRefusedPassword(r.err, t0.Add(r.at))
				if got := errors.Is(err, authz.ErrInvalid); got != r.permanent {
					t.Fatalf("run %d at +%v: permanent = %v, want %v: %v", i, r.at, got, r.permanent, err)
				}
				if r.err != nil && err == nil {
					t.Fatalf("run %d at +%v: the error was dropped", i, r.at)
				}
				if r.err == refused && !r.permanent && !errors.Is(err, authz.ErrUnavailable) {
					t.Errorf("run %d at +%v: a forgiven refusal does not wrap ErrUnavailable: %v", i, r.at, err)
				}
			}
		})
	}
}
