package composetest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestPostgresServices(t *testing.T) {
	tests := []struct {
		name    string
		command []string
	}{
		// The sync reads the application's changes by logical replication.
		{svcPostgres, []string{"postgres", "-c", "wal_level=logical"}},
		{svcSpiceDBStore, []string{"postgres", "-c", "track_commit_timestamp=on"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := service(t, tt.name)
			if !slices.Equal(s.Command, tt.command) {
				t.Errorf("command %q, want %q", s.Command, tt.command)
			}
			vars := env(t, s)
			for _, k := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
				if vars[k] == "" {
					t.Errorf("%s is not set", k)
				}
			}
			// Over TCP: while the image initialises a new data directory its
			// temporary server listens on the Unix socket only.
			want := []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", vars["POSTGRES_USER"], "-d", vars["POSTGRES_DB"]}
			if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, want) {
				t.Errorf("healthcheck %v, want %v", s.HealthCheck, want)
			}
			// The image keeps its data in a volume of its own at PGDATA.
			if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/postgresql/data"
			}) {
				t.Errorf("no named volume at /var/lib/postgresql/data: the data would die with the container")
			}
		})
	}
}

// seedFile is the sample data the seed service loads.
func seedFile(t *testing.T) string {
	t.Helper()
	s := service(t, svcSeed)
	// psql -f <path in the container>, from a read-only bind mount of
	// a file of this repository.
	i := slices.Index(s.Command, "-f")
	if s.Command[0] != "psql" || i < 0 || i+1 >= len(s.Command) || !slices.Contains(s.Command, "ON_ERROR_STOP=1") {
		t.Fatalf("seed command %q: want psql -v ON_ERROR_STOP=1 ... -f FILE", s.Command)
	}
	inContainer := s.Command[i+1]
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == inContainer {
			if !v.ReadOnly {
				t.Errorf("seed mount %s is writable", v.Target)
			}
			if rel, err := filepath.Rel(root(t), v.Source); err != nil || rel != filepath.Join("deploy", "compose", "sample-data.sql") {
				t.Errorf("seed mounts %s, want deploy/compose/sample-data.sql", v.Source)
			}
			return v.Source
		}
	}
	t.Fatalf("seed runs %s, which no bind mount provides", inContainer)
	return ""
}

func TestSeedConnectsToTheApplicationDatabase(t *testing.T) {
	vars := env(t, service(t, svcSeed))
	pg := env(t, service(t, svcPostgres))
	got := []string{vars["PGHOST"], vars["PGUSER"], vars["PGPASSWORD"], vars["PGDATABASE"]}
	want := []string{svcPostgres, pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]}
	if !slices.Equal(got, want) {
		t.Errorf("seed connects as PGHOST, PGUSER, PGPASSWORD, PGDATABASE = %q, want %q", got, want)
	}
}

// TestSeedLoadsOnceIntoAMigratedDatabase runs the seed file against a real
// PostgreSQL migrated by tenantgate, as the stack does after `migrate`.
func TestSeedLoadsOnceIntoAMigratedDatabase(t *testing.T) {
	sql, err := os.ReadFile(seedFile(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, testutil.NewTestDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	seed := func(t *testing.T) {
		t.Helper()
		// The simple protocol, as psql sends a file.
		if _, err := conn.Exec(ctx, string(sql), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	count := func(t *testing.T, query string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const (
		companies = "select count(*) from companies"
		members   = "select count(*) from company_memberships"
		active    = "select count(*) from company_memberships where status = 'active'"
		depth     = `with recursive up (id, parent_id, level) as (
				select id, parent_id, 1 from companies where id = 'acme-paris'
				union all select c.id, c.parent_id, up.level + 1 from companies c join up on c.id = up.parent_id)
			select max(level) from up`
		users = "select count(distinct user_id) from company_memberships"
	)

	seed(t)
	tests := []struct {
		query string
		want  int
	}{
		{companies, 8},
		{members, 9},
		{active, 7}, // one inactive, one pending
		{depth, 4},  // acme-paris, -france, -europe, -holding
		{users, 7},  // the demo's seven users
	}
	for _, tt := range tests {
		if got := count(t, tt.query); got != tt.want {
			t.Errorf("after seeding, %s = %d, want %d", tt.query, got, tt.want)
		}
	}

	// A later `docker compose up` seeds again: a database with data, and
	// whatever the user changed in it, stays as it is.
	if _, err := conn.Exec(ctx, "update company_memberships set role = 'viewer' where user_id = 'alice@acme.example'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "delete from company_memberships where user_id = 'grace@acme.example'"); err != nil {
		t.Fatal(err)
	}
	seed(t)
	if got := count(t, members); got != 8 {
		t.Errorf("after seeding again, %d memberships, want the user's 8", got)
	}
	if got := count(t, "select count(*) from company_memberships where user_id = 'alice@acme.example' and role = 'viewer'"); got != 1 {
		t.Error("seeding again undid the user's change")
	}
}
