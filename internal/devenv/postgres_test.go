package devenv

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTestPostgres starts a cluster stopped and removed when t ends.
// (internal/testutil.NewTestPostgres does the same, but it imports this
// package.)
func startTestPostgres(t *testing.T) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := pg.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return pg
}

func TestPostgresLifecycle(t *testing.T) {
	t.Parallel()
	began := time.Now()
	pg := startTestPostgres(t)
	t.Logf("cluster started in %v", time.Since(began))

	t.Run("URL connects", func(t *testing.T) {
		var user string
		pgQueryRow(t, pg.URL("postgres"), "select current_user", &user)
		if user != "postgres" {
			t.Errorf("current_user = %q, want postgres", user)
		}
	})

	t.Run("settings for tests apply", func(t *testing.T) {
		for setting, want := range map[string]string{
			"wal_level":       "logical",
			"fsync":           "off",
			"max_connections": "200",
		} {
			var got string
			pgQueryRow(t, pg.URL("postgres"), "select current_setting($1)", &got, setting)
			if got != want {
				t.Errorf("%s = %q, want %q", setting, got, want)
			}
		}
	})

	t.Run("CreateDatabase copies the template", func(t *testing.T) {
		ctx := t.Context()
		pgExec(t, pg.URL("postgres"), "create database tpl")
		pgExec(t, pg.URL("tpl"), "create table marker (v int)", "insert into marker values (7)")
		if err := pg.CreateDatabase(ctx, "copy", "tpl"); err != nil {
			t.Fatal(err)
		}
		var v int
		pgQueryRow(t, pg.URL("copy"), "select v from marker", &v)
		if v != 7 {
			t.Errorf("marker in copy = %d, want 7", v)
		}
		if err := pg.CreateDatabase(ctx, "copy", ""); err == nil {
			t.Error("creating an existing database succeeded")
		}
	})

	t.Run("Restart keeps data and port", func(t *testing.T) {
		ctx := t.Context()
		pgExec(t, pg.URL("postgres"), "create table kept (v text)", "insert into kept values ('before restart')")
		// A session open across the restart must be ended, not block it.
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)

		began := time.Now()
		if err := pg.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart took %v", time.Since(began))
		if err := conn.Ping(ctx); err == nil {
			t.Error("a session from before the restart still works")
		}
		var v string
		pgQueryRow(t, pg.URL("postgres"), "select v from kept", &v)
		if v != "before restart" {
			t.Errorf("kept = %q after restart", v)
		}
	})

	t.Run("Halt refuses connections until Start, which keeps data and port", func(t *testing.T) {
		ctx := t.Context()
		pgExec(t, pg.URL("postgres"), "create table halted (v text)", "insert into halted values ('before halt')")
		if err := pg.Halt(ctx); err != nil {
			t.Fatal(err)
		}
		if conn, err := pgx.Connect(ctx, pg.URL("postgres")); err == nil {
			conn.Close(ctx)
			t.Error("connected while halted")
		}
		if err := pg.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var v string
		pgQueryRow(t, pg.URL("postgres"), "select v from halted", &v)
		if v != "before halt" {
			t.Errorf("halted = %q after Start", v)
		}
	})

	t.Run("Stop removes the directory", func(t *testing.T) {
		ctx := t.Context()
		if err := pg.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(pg.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after Stop: %v, want not exist", pg.dir, err)
		}
		if conn, err := pgx.Connect(ctx, pg.URL("postgres")); err == nil {
			conn.Close(ctx)
			t.Error("connected after Stop")
		}
		if err := pg.Stop(ctx); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if err := pg.Restart(ctx); err == nil {
			t.Error("Restart after Stop succeeded")
		}
		if err := pg.Start(ctx); err == nil {
			t.Error("Start after Stop succeeded")
		}
	})
}

func TestStartPostgresWithoutBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	pg, err := StartPostgres(t.Context(), PostgresOptions{})
	if err == nil {
		pg.Stop(t.Context())
		t.Fatal("StartPostgres succeeded without initdb on PATH")
	}
	for _, want := range []string{"initdb not found on PATH", "apt-get install postgresql", PostgresURLEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func pgExec(t *testing.T, dbURL string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, stmt := range stmts {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func pgQueryRow(t *testing.T, dbURL, sql string, dest any, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(dest); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
