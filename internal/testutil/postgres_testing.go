package testutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/store"
)

// PostgresURLEnv names an existing server for the tests to use instead of
// starting a cluster: a postgres:// URL of a role that may create databases.
const PostgresURLEnv = devenv.PostgresURLEnv

// connectTimeout bounds one connection attempt of the admin pool, so that a
// server that accepts TCP but never answers cannot use up a whole wait.
const connectTimeout = 5 * time.Second

// testPostgresTimeout bounds starting a cluster, migrating the template and
// creating or dropping one database.
const testPostgresTimeout = 2 * time.Minute

// shared is the one server a test binary makes its databases on, set up by
// the first NewTestDatabase and torn down by PostgresMain.
var shared struct {
	mu     sync.Mutex
	inMain bool
	tried  bool
	server *testServer
	err    error
}

// PostgresMain is TestMain for packages whose tests use NewTestDatabase:
//
//	func TestMain(m *testing.M) { testutil.PostgresMain(m) }
//
// It runs the tests and then stops the cluster they started, if any, so no
// server outlives the test binary. It does not return.
func PostgresMain(m *testing.M) {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	server := shared.server
	shared.mu.Unlock()
	if server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), testPostgresTimeout)
		err := server.close(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// NewTestDatabase returns the URL of a new database with all migrations
// applied, dropped when tb ends. The server is the one PostgresURLEnv names
// or else a cluster started for this test binary; without either, tb fails.
// Databases are cloned from a template migrated once, which costs a fraction
// of migrating each.
func NewTestDatabase(tb testing.TB) string {
	tb.Helper()
	s := sharedServer(tb)
	return s.newDatabase(tb, s.template)
}

// NewEmptyTestDatabase is NewTestDatabase without the migrations, for tests
// of the migrations themselves.
func NewEmptyTestDatabase(tb testing.TB) string {
	tb.Helper()
	return sharedServer(tb).newDatabase(tb, "template0")
}

// NewTestPostgres starts a cluster of tb's own, stopped and removed when tb
// ends, for tests that stop or restart the server under a client or need
// settings of their own (postgresql.conf lines, overriding the defaults). It needs
// the server binaries even when PostgresURLEnv is set.
func NewTestPostgres(tb testing.TB, settings ...string) *devenv.Postgres {
	tb.Helper()
	return NewTestPostgresWith(tb, devenv.PostgresOptions{Settings: settings})
}

// NewTestPostgresWith is NewTestPostgres with every option of
// devenv.StartPostgres, such as a Password that TCP logins must give; a
// nil Logger writes to tb's output.
func NewTestPostgresWith(tb testing.TB, opts devenv.PostgresOptions) *devenv.Postgres {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tb.Output(), nil))
	}
	ctx, cancel := context.WithTimeout(tb.Context(), testPostgresTimeout)
	defer cancel()
	pg, err := devenv.StartPostgres(ctx, opts)
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testPostgresTimeout)
		defer cancel()
		if err := pg.Stop(ctx); err != nil {
			tb.Errorf("testutil: %v", err)
		}
	})
	return pg
}

func sharedServer(tb testing.TB) *testServer {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		tb.Fatal("testutil: TestMain must call testutil.PostgresMain(m), which stops the tests' PostgreSQL when they end")
	}
	if !shared.tried {
		shared.tried = true
		ctx, cancel := context.WithTimeout(context.Background(), testPostgresTimeout)
		defer cancel()
		shared.server, shared.err = startTestServer(ctx)
	}
	if shared.err != nil {
		tb.Fatalf("testutil: no PostgreSQL for tests: %v", shared.err)
	}
	return shared.server
}

// testServer makes test databases on one server.
type testServer struct {
	// cluster is nil when PostgresURLEnv names the server.
	cluster *devenv.Postgres
	// adminURL is the database to run CREATE and DROP DATABASE from; admin
	// is a pool on it, since a connection costs as much as a clone.
	adminURL *url.URL
	admin    *pgxpool.Pool
	// template is migrated once and cloned for every NewTestDatabase.
	template string
}

func startTestServer(ctx context.Context) (*testServer, error) {
	// The name is unique so test binaries sharing a server (go test runs
	// packages in parallel) never touch each other's template.
	s := &testServer{template: "tenantgate_template_" + randomSuffix()}
	adminURL, source := os.Getenv(PostgresURLEnv), "the server "+PostgresURLEnv+" names"
	if adminURL == "" {
		pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{})
		if err != nil {
			return nil, err
		}
		s.cluster = pg
		adminURL, source = pg.URL("postgres"), "the cluster started for the tests"
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The URL itself stays out of the message: it may hold a password.
		return nil, errors.Join(fmt.Errorf("%s must be a postgres:// URL", PostgresURLEnv), s.close(ctx))
	}
	s.adminURL = u
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, errors.Join(err, s.close(ctx))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if s.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, errors.Join(err, s.close(ctx))
	}
	if err := s.admin.Ping(ctx); err != nil {
		// Nothing to clean up on a server we cannot reach.
		s.admin.Close()
		s.admin = nil
		return nil, errors.Join(fmt.Errorf("connect to %s: %w", source, err), s.close(ctx))
	}
	if err := s.createTemplate(ctx); err != nil {
		return nil, errors.Join(err, s.close(ctx))
	}
	return s, nil
}

func (s *testServer) createTemplate(ctx context.Context) error {
	if err := devenv.CreateDatabase(ctx, s.admin, s.template, "template0"); err != nil {
		return fmt.Errorf("template database: %w", err)
	}
	if err := store.Migrate(ctx, s.databaseURL(s.template), nil); err != nil {
		return fmt.Errorf("template database: %w", err)
	}
	// Nobody may connect to it any more: CREATE DATABASE refuses to copy a
	// database that has sessions. (As its owner we may copy it without
	// marking it a template, which would also make it harder to drop.)
	if _, err := s.admin.Exec(ctx, "alter database "+devenv.QuoteIdent(s.template)+" with allow_connections false"); err != nil {
		return fmt.Errorf("template database: %w", err)
	}
	return nil
}

func (s *testServer) newDatabase(tb testing.TB, template string) string {
	tb.Helper()
	name := "tenantgate_test_" + randomSuffix()
	ctx, cancel := context.WithTimeout(tb.Context(), testPostgresTimeout)
	defer cancel()
	if err := devenv.CreateDatabase(ctx, s.admin, name, template); err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	tb.Cleanup(func() {
		// tb.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), testPostgresTimeout)
		defer cancel()
		if err := s.dropDatabase(ctx, name); err != nil {
			tb.Errorf("testutil: drop database %s: %v", name, err)
		}
	})
	return s.databaseURL(name)
}

// dropDatabase drops database name. FORCE ends sessions a test left open,
// such as a leaked pool, but not a replication slot still marked active:
// a walsender whose client has just gone keeps its slot for a moment, and
// a temporary slot only goes with it. So while a slot holds the database,
// its walsender is ended and the drop tried again, until ctx ends.
func (s *testServer) dropDatabase(ctx context.Context, name string) error {
	for {
		_, err := s.admin.Exec(ctx, "drop database if exists "+devenv.QuoteIdent(name)+" with (force)")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
			return err
		}
		if _, err := s.admin.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE database = $1 AND active_pid IS NOT NULL`, name); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("a replication slot still holds it: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// close stops a cluster of our own; on a server we were given, it drops
// the template, the one thing no test cleanup drops. It copes with a
// server that is only half set up.
func (s *testServer) close(ctx context.Context) error {
	if s.admin != nil {
		defer s.admin.Close()
	}
	if s.cluster != nil {
		return s.cluster.Stop(ctx)
	}
	if s.admin == nil {
		return nil
	}
	if _, err := s.admin.Exec(ctx, "drop database if exists "+devenv.QuoteIdent(s.template)+" with (force)"); err != nil {
		return fmt.Errorf("drop template database %s: %w", s.template, err)
	}
	return nil
}

func (s *testServer) databaseURL(name string) string {
	u := *s.adminURL
	u.Path, u.RawPath = "/"+name, ""
	return u.String()
}

func randomSuffix() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// NewAppDatabase creates the database "app" on pg, a cluster of the
// test's own, migrates it as `tenantgate migrate` would, and returns its
// URL.
func NewAppDatabase(tb testing.TB, pg *devenv.Postgres) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	if err := pg.CreateDatabase(ctx, "app", ""); err != nil {
		tb.Fatal(err)
	}
	if err := store.Migrate(ctx, pg.URL("app"), nil); err != nil {
		tb.Fatal(err)
	}
	return pg.URL("app")
}

// ExecSQL runs each of sqls (one or more statements each) on dbURL.
func ExecSQL(tb testing.TB, dbURL string, sqls ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			tb.Fatalf("exec %q: %v", sql, err)
		}
	}
}
