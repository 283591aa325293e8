package testutil

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

// This test starts a server of its own rather than going through
// PostgresMain, so this package needs no TestMain.

// TestNewTestPostgres: the cluster runs for its test and is stopped when
// that test ends.
func TestNewTestPostgres(t *testing.T) {
	t.Parallel()
	var pg *devenv.Postgres
	t.Run("running", func(t *testing.T) {
		pg = NewTestPostgres(t)
		var setting string
		pgQueryRow(t, pg.URL("postgres"), "select current_setting('wal_level')", &setting)
		if setting != "logical" {
			t.Errorf("wal_level = %q, want logical", setting)
		}
	})
	if pg == nil {
		t.Fatal("no cluster")
	}
	if conn, err := pgx.Connect(t.Context(), pg.URL("postgres")); err == nil {
		conn.Close(t.Context())
		t.Error("connected after the cluster's test ended")
	}
}

func TestTestServerDatabases(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testPostgresTimeout)
	defer cancel()
	began := time.Now()
	s, err := startTestServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server with migrated template ready in %v", time.Since(began))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testPostgresTimeout)
		defer cancel()
		if err := s.close(ctx); err != nil {
			t.Error(err)
		}
	})

	tests := []struct {
		name       string
		template   string
		wantTables bool
	}{
		{name: "migrated", template: s.template, wantTables: true},
		{name: "empty", template: "template0", wantTables: false},
	}
	for _, tt := range tests {
		var dbURL string
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			dbURL = s.newDatabase(t, tt.template)
			t.Logf("database created in %v", time.Since(began))
			var has bool
			pgQueryRow(t, dbURL, "select to_regclass('companies') is not null", &has)
			if has != tt.wantTables {
				t.Errorf("companies exists = %v, want %v", has, tt.wantTables)
			}
		})
		t.Run(tt.name+" is dropped after its test", func(t *testing.T) {
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimPrefix(u.Path, "/")
			var exists bool
			pgQueryRow(t, s.adminURL.String(), "select exists (select 1 from pg_database where datname = $1)", &exists, name)
			if exists {
				t.Errorf("database %s still exists", name)
			}
		})
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
