package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewEmptyTestDatabase(t)
	var first, second bytes.Buffer
	if err := store.Migrate(t.Context(), dbURL, jsonLogger(&first)); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(t.Context(), dbURL, jsonLogger(&second)); err != nil {
		t.Fatalf("second run: %v", err)
	}
	applied := appliedVersions(t, dbURL)
	if len(applied) == 0 {
		t.Fatal("no migration recorded")
	}
	if got := countApplied(&first); got != len(applied) {
		t.Errorf("first run logged %d applied migrations, want %d:\n%s", got, len(applied), &first)
	}
	if got := countApplied(&second); got != 0 {
		t.Errorf("second run logged %d applied migrations, want 0:\n%s", got, &second)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewEmptyTestDatabase(t)
	logs := make([]bytes.Buffer, 2)
	errs := make(chan error, len(logs))
	for i := range logs {
		go func() { errs <- store.Migrate(t.Context(), dbURL, jsonLogger(&logs[i])) }()
	}
	for range logs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	applied := appliedVersions(t, dbURL)
	if total := countApplied(&logs[0]) + countApplied(&logs[1]); total != len(applied) {
		t.Errorf("the two runs applied %d migrations together, want each of %v once", total, applied)
	}
}

func TestMigrateAdoptsExistingTables(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewEmptyTestDatabase(t)
	// The application's own tables, written before tenantgate came along.
	execSQL(t, dbURL,
		`create table companies (id text primary key, name text not null, parent_id text null references companies (id))`,
		`create table company_memberships (
			id text primary key default gen_random_uuid()::text,
			user_id text not null,
			company_id text not null references companies (id) on delete cascade,
			role text not null check (role in ('owner', 'admin', 'editor', 'viewer')),
			status text not null default 'active' check (status in ('active', 'inactive', 'pending')),
			created_at timestamptz not null default now(),
			updated_at timestamptz not null default now(),
			unique (user_id, company_id))`,
		`insert into companies values ('acme', 'Acme', null)`,
		`insert into company_memberships (user_id, company_id, role) values ('alice', 'acme', 'owner')`)
	if err := store.Migrate(t.Context(), dbURL, nil); err != nil {
		t.Fatal(err)
	}
	var members int
	queryRow(t, dbURL, `select count(*) from company_memberships where company_id = 'acme'`, &members)
	if members != 1 {
		t.Errorf("memberships of acme after migrate = %d, want 1", members)
	}
	s := openStore(t, dbURL)
	err := s.UpsertCompany(t.Context(), authz.Company{ID: "acme", Name: "Acme", ParentID: "acme"})
	if !errors.Is(err, authz.ErrConflict) {
		t.Errorf("self-parent on an adopted table: %v, want ErrConflict", err)
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)

	t.Run("columns", func(t *testing.T) {
		want := []string{
			"companies.id text NO", "companies.name text NO", "companies.parent_id text YES",
			"company_memberships.company_id text NO", "company_memberships.created_at timestamp with time zone NO",
			"company_memberships.id text NO", "company_memberships.role text NO",
			"company_memberships.status text NO", "company_memberships.updated_at timestamp with time zone NO",
			"company_memberships.user_id text NO",
		}
		got := queryStrings(t, dbURL, `
			select table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
			from information_schema.columns
			where table_schema = current_schema() and table_name in ('companies', 'company_memberships')
			order by 1`)
		if !slices.Equal(got, want) {
			t.Errorf("columns:\n got %q\nwant %q", got, want)
		}
	})

	t.Run("indexes", func(t *testing.T) {
		got := queryStrings(t, dbURL, `
			select indexdef from pg_indexes
			where schemaname = current_schema() and tablename in ('companies', 'company_memberships')
			order by 1`)
		for _, want := range []string{
			"ON public.companies USING btree (parent_id)",
			"ON public.company_memberships USING btree (company_id)",
			"ON public.company_memberships USING btree (user_id, company_id)",
		} {
			if !slices.ContainsFunc(got, func(def string) bool { return strings.HasSuffix(def, want) }) {
				t.Errorf("no index %q among %q", want, got)
			}
		}
	})

	t.Run("replica identity full", func(t *testing.T) {
		got := queryStrings(t, dbURL, `
			select relname || ' ' || relreplident::text from pg_class
			where relnamespace = current_schema()::regnamespace and relname in ('companies', 'company_memberships')
			order by 1`)
		if want := []string{"companies f", "company_memberships f"}; !slices.Equal(got, want) {
			t.Errorf("replica identities = %q, want %q", got, want)
		}
	})

	t.Run("publication", func(t *testing.T) {
		got := queryStrings(t, dbURL, `
			select tablename from pg_publication_tables where pubname = 'tenantgate' order by 1`)
		if want := []string{"companies", "company_memberships"}; !slices.Equal(got, want) {
			t.Errorf("tables in publication tenantgate = %q, want %q", got, want)
		}
	})

	// The data contract's check constraints are the SQL copy of the role
	// and status lists: a role added in Go only (or in SQL only) fails here.
	t.Run("check constraints name every role and status", func(t *testing.T) {
		quoted := regexp.MustCompile(`'([^']*)'::text`)
		for _, c := range []struct {
			column string
			want   []string
		}{
			{"role", stringsOf(authz.Roles)},
			{"status", stringsOf(authz.Statuses)},
		} {
			defs := queryStrings(t, dbURL, fmt.Sprintf(`select pg_get_constraintdef(oid) from pg_constraint
				where conrelid = 'company_memberships'::regclass and contype = 'c'
				and pg_get_constraintdef(oid) like '%%(%s = %%'`, c.column))
			if len(defs) != 1 {
				t.Fatalf("check constraints on %s: %q, want one", c.column, defs)
			}
			var got []string
			for _, m := range quoted.FindAllStringSubmatch(defs[0], -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(c.want))) {
				t.Errorf("%s check allows %q, package authz has %q", c.column, got, c.want)
			}
		}
	})

	t.Run("version table in schema tenantgate", func(t *testing.T) {
		var exists bool
		queryRow(t, dbURL, `select to_regclass('tenantgate.schema_migrations') is not null`, &exists)
		if !exists {
			t.Error("tenantgate.schema_migrations does not exist")
		}
	})
}

func TestParentCycleIsConflict(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	// a <- b <- c <- d
	chain := []authz.Company{
		{ID: "a", Name: "A"}, {ID: "b", Name: "B", ParentID: "a"},
		{ID: "c", Name: "C", ParentID: "b"}, {ID: "d", Name: "D", ParentID: "c"},
	}
	upsertAll(t, s, chain...)

	tests := []struct {
		name   string
		update authz.Company
	}{
		{"own parent", authz.Company{ID: "b", Name: "B", ParentID: "b"}},
		{"new company as its own parent", authz.Company{ID: "n", Name: "N", ParentID: "n"}},
		{"two-company loop", authz.Company{ID: "a", Name: "A", ParentID: "b"}},
		{"four-company loop", authz.Company{ID: "a", Name: "A", ParentID: "d"}},
		{"under a grandchild", authz.Company{ID: "b", Name: "B", ParentID: "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.UpsertCompany(t.Context(), tt.update)
			if !errors.Is(err, authz.ErrConflict) {
				t.Fatalf("UpsertCompany(%+v) = %v, want ErrConflict", tt.update, err)
			}
			got, err := s.CompaniesByIDs(t.Context(), []string{"a", "b", "c", "d", "n"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, chain) {
				t.Errorf("tree after a rejected change = %+v, want %+v", got, chain)
			}
		})
	}
}

func TestTreeDepthIsBounded(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()
	level := func(n int) string { return fmt.Sprintf("level-%02d", n) }

	for n := 1; n <= store.MaxDepth; n++ {
		c := authz.Company{ID: level(n), Name: level(n)}
		if n > 1 {
			c.ParentID = level(n - 1)
		}
		if err := s.UpsertCompany(ctx, c); err != nil {
			t.Fatalf("company at depth %d of %d: %v", n, store.MaxDepth, err)
		}
	}
	// x <- y: a subtree of two levels.
	upsertAll(t, s, authz.Company{ID: "x", Name: "X"}, authz.Company{ID: "y", Name: "Y", ParentID: "x"})

	tests := []struct {
		name    string
		company authz.Company
		want    error
	}{
		{"one level more than MaxDepth", authz.Company{ID: "too-deep", Name: "T", ParentID: level(store.MaxDepth)}, authz.ErrConflict},
		{"subtree moved one level too deep", authz.Company{ID: "x", Name: "X", ParentID: level(store.MaxDepth - 1)}, authz.ErrConflict},
		{"subtree moved to exactly MaxDepth", authz.Company{ID: "x", Name: "X", ParentID: level(store.MaxDepth - 2)}, nil},
		{"leaf under the deepest subtree", authz.Company{ID: "z", Name: "Z", ParentID: "y"}, authz.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.UpsertCompany(ctx, tt.company)
			if !errors.Is(err, tt.want) {
				t.Errorf("UpsertCompany(%+v) = %v, want %v", tt.company, err, tt.want)
			}
		})
	}
}

// Two reparents that would each be fine alone but together close a loop
// must not both commit.
func TestConcurrentReparentsCannotCloseALoop(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()
	upsertAll(t, s, authz.Company{ID: "p", Name: "P"}, authz.Company{ID: "q", Name: "Q"})

	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `update companies set parent_id = 'q' where id = 'p'`); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- s.UpsertCompany(ctx, authz.Company{ID: "q", Name: "Q", ParentID: "p"}) }()
	waitFor(t, "the second reparent to wait for the first", func() bool {
		select {
		case err := <-second:
			t.Fatalf("second reparent returned %v while the first was uncommitted; it must wait", err)
		default:
		}
		var waiting int
		queryRow(t, dbURL, `
			select count(*) from pg_locks
			where locktype = 'advisory' and not granted
			and database = (select oid from pg_database where datname = current_database())`, &waiting)
		return waiting > 0
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-second; !errors.Is(err, authz.ErrConflict) {
		t.Errorf("second reparent = %v, want ErrConflict", err)
	}
}

func TestUpsertAndDeleteRoundTrip(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()

	t.Run("company", func(t *testing.T) {
		steps := []authz.Company{
			{ID: "holding", Name: "Holding"},
			{ID: "a.b@c d/ü", Name: "Odd ID", ParentID: "holding"},
			{ID: "a.b@c d/ü", Name: "Renamed"},
			{ID: "a.b@c d/ü", Name: "Renamed", ParentID: "holding"},
			{ID: "a.b@c d/ü", Name: "Renamed", ParentID: "holding"},
		}
		for _, c := range steps {
			if err := s.UpsertCompany(ctx, c); err != nil {
				t.Fatalf("UpsertCompany(%+v): %v", c, err)
			}
			got, err := s.CompaniesByIDs(ctx, []string{c.ID})
			if err != nil {
				t.Fatal(err)
			}
			if want := []authz.Company{c}; !slices.Equal(got, want) {
				t.Errorf("after UpsertCompany(%+v): %+v", c, got)
			}
		}
	})

	t.Run("membership", func(t *testing.T) {
		upsertAll(t, s, authz.Company{ID: "m", Name: "M"})
		steps := []authz.Membership{
			{UserID: "alice@example.com", CompanyID: "m", Role: authz.RoleViewer, Status: authz.StatusPending},
			{UserID: "alice@example.com", CompanyID: "m", Role: authz.RoleAdmin, Status: authz.StatusActive},
			{UserID: "alice@example.com", CompanyID: "m", Role: authz.RoleAdmin, Status: authz.StatusInactive},
		}
		var firstID string
		for i, m := range steps {
			if err := s.UpsertMembership(ctx, m); err != nil {
				t.Fatalf("UpsertMembership(%+v): %v", m, err)
			}
			var id, role, status string
			queryRow(t, dbURL, `
				select id, role, status from company_memberships
				where user_id = 'alice@example.com' and company_id = 'm'`, &id, &role, &status)
			if role != string(m.Role) || status != string(m.Status) {
				t.Errorf("after UpsertMembership(%+v): role %s, status %s", m, role, status)
			}
			if i == 0 {
				firstID = id
			} else if id != firstID {
				t.Errorf("membership ID changed from %s to %s on update", firstID, id)
			}
		}
		if err := s.DeleteMembership(ctx, "alice@example.com", "m"); err != nil {
			t.Fatal(err)
		}
		var left int
		queryRow(t, dbURL, `select count(*) from company_memberships where company_id = 'm'`, &left)
		if left != 0 {
			t.Errorf("%d memberships left after delete", left)
		}
		if err := s.DeleteMembership(ctx, "alice@example.com", "m"); !errors.Is(err, authz.ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}
	})
}

func TestUnchangedUpsertWritesNothing(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()
	c := authz.Company{ID: "same", Name: "Same"}
	m := authz.Membership{UserID: "u", CompanyID: "same", Role: authz.RoleEditor, Status: authz.StatusActive}
	upsertAll(t, s, c)
	if err := s.UpsertMembership(ctx, m); err != nil {
		t.Fatal(err)
	}
	var before string
	queryRow(t, dbURL, `select (select xmin::text from companies) || '/' || (select xmin::text from company_memberships)`, &before)
	upsertAll(t, s, c)
	if err := s.UpsertMembership(ctx, m); err != nil {
		t.Fatal(err)
	}
	var after string
	queryRow(t, dbURL, `select (select xmin::text from companies) || '/' || (select xmin::text from company_memberships)`, &after)
	if after != before {
		t.Errorf("row versions changed from %s to %s by identical upserts", before, after)
	}
}

func TestCompaniesByIDs(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	root := authz.Company{ID: "root", Name: "Root"}
	kid := authz.Company{ID: "kid", Name: "Kid", ParentID: "root"}
	other := authz.Company{ID: "other", Name: "Other"}
	upsertAll(t, s, root, kid, other)

	tests := []struct {
		name string
		ids  []string
		want []authz.Company
	}{
		{"order of the request", []string{"other", "kid", "root"}, []authz.Company{other, kid, root}},
		{"unknown ids left out", []string{"nope", "kid", "gone"}, []authz.Company{kid}},
		{"repeated id once", []string{"kid", "root", "kid"}, []authz.Company{kid, root}},
		{"only unknown", []string{"nope"}, nil},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.CompaniesByIDs(t.Context(), tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || len(got) > 0 && !slices.Equal(got, tt.want) {
				t.Errorf("CompaniesByIDs(%q) = %+v, want %+v", tt.ids, got, tt.want)
			}
		})
	}
}

func TestDeletingACompanyDeletesItsMemberships(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()
	upsertAll(t, s, authz.Company{ID: "doomed", Name: "Doomed"}, authz.Company{ID: "kept", Name: "Kept"})
	for _, m := range []authz.Membership{
		{UserID: "u1", CompanyID: "doomed", Role: authz.RoleOwner, Status: authz.StatusActive},
		{UserID: "u2", CompanyID: "doomed", Role: authz.RoleViewer, Status: authz.StatusActive},
		{UserID: "u1", CompanyID: "kept", Role: authz.RoleOwner, Status: authz.StatusActive},
	} {
		if err := s.UpsertMembership(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, `delete from companies where id = 'doomed'`); err != nil {
		t.Fatal(err)
	}
	got := queryStrings(t, dbURL, `select user_id || '@' || company_id from company_memberships order by 1`)
	if want := []string{"u1@kept"}; !slices.Equal(got, want) {
		t.Errorf("memberships after deleting a company = %q, want %q", got, want)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	upsertAll(t, s, authz.Company{ID: "co", Name: "Co"})
	member := func(role authz.Role, status authz.Status) authz.Membership {
		return authz.Membership{UserID: "u", CompanyID: "co", Role: role, Status: status}
	}

	tests := []struct {
		name     string
		call     func(context.Context) error
		want     error
		sqlState string // when the database, not Go, must be the one refusing
	}{
		{"unknown role", func(ctx context.Context) error {
			return s.UpsertMembership(ctx, member("superuser", authz.StatusActive))
		}, authz.ErrInvalid, "23514"},
		{"unknown status", func(ctx context.Context) error { return s.UpsertMembership(ctx, member(authz.RoleViewer, "banned")) }, authz.ErrInvalid, "23514"},
		{"wildcard user", func(ctx context.Context) error {
			return s.UpsertMembership(ctx, authz.Membership{UserID: "*", CompanyID: "co", Role: authz.RoleViewer, Status: authz.StatusActive})
		}, authz.ErrInvalid, ""},
		{"unknown company of a membership", func(ctx context.Context) error {
			return s.UpsertMembership(ctx, authz.Membership{UserID: "u", CompanyID: "nope", Role: authz.RoleViewer, Status: authz.StatusActive})
		}, authz.ErrNotFound, "23503"},
		{"unknown parent", func(ctx context.Context) error {
			return s.UpsertCompany(ctx, authz.Company{ID: "kid", Name: "Kid", ParentID: "nope"})
		}, authz.ErrNotFound, "23503"},
		{"empty company id", func(ctx context.Context) error { return s.UpsertCompany(ctx, authz.Company{Name: "X"}) }, authz.ErrInvalid, ""},
		{"empty name", func(ctx context.Context) error { return s.UpsertCompany(ctx, authz.Company{ID: "x"}) }, authz.ErrInvalid, ""},
		{"NUL in name", func(ctx context.Context) error { return s.UpsertCompany(ctx, authz.Company{ID: "x", Name: "a\x00b"}) }, authz.ErrInvalid, "22021"},
		{"NUL in a created company's name", func(ctx context.Context) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: "u"}, authz.Company{ID: "y", Name: "a\x00b"})
			return err
		}, authz.ErrInvalid, "22021"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context())
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var pgErr *pgconn.PgError
			if tt.sqlState != "" && (!errors.As(err, &pgErr) || pgErr.Code != tt.sqlState) {
				t.Fatalf("got %v, want it to come from SQLSTATE %s", err, tt.sqlState)
			}
			// The message reaches callers and the audit trail; the
			// database's own words stay in the chain.
			if pgErr != nil && strings.Contains(err.Error(), pgErr.Message) {
				t.Errorf("message %q carries PostgreSQL's %q", err, pgErr.Message)
			}
		})
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()

	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		dbURL := "postgres://postgres@" + addr + "/postgres?sslmode=disable"
		if _, err := store.Open(t.Context(), dbURL, nil); !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("Open = %v, want ErrUnavailable", err)
		}
		if err := store.Migrate(t.Context(), dbURL, nil); !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("Migrate = %v, want ErrUnavailable", err)
		}
	})

	t.Run("closed store", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(t.Context(), testutil.NewTestDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := s.Ping(t.Context()); !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
		}
	})

	t.Run("deadline passed", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, testutil.NewTestDatabase(t))
		ctx, cancel := context.WithDeadline(t.Context(), time.Now())
		defer cancel()
		if _, err := s.CompaniesByIDs(ctx, []string{"x"}); !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("CompaniesByIDs = %v, want ErrUnavailable", err)
		}
	})

	t.Run("restarted and stopped server", func(t *testing.T) {
		t.Parallel()
		pg := testutil.NewTestPostgres(t)
		ctx := t.Context()
		testutil.NewAppDatabase(t, pg)
		s := openStore(t, pg.URL("app"))
		upsertAll(t, s, authz.Company{ID: "before", Name: "Before"})

		if err := pg.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		// Pooled connections died with the old server; each failure on the
		// way back must say unavailable, and the pool must recover.
		waitFor(t, "the store to work after a restart", func() bool {
			_, err := s.CompaniesByIDs(ctx, []string{"before"})
			if err != nil && !errors.Is(err, authz.ErrUnavailable) {
				t.Fatalf("CompaniesByIDs after restart = %v, want nil or ErrUnavailable", err)
			}
			return err == nil
		})

		if err := pg.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		calls := map[string]func() error{
			"Ping": func() error { return s.Ping(ctx) },
			"CompaniesByIDs": func() error {
				_, err := s.CompaniesByIDs(ctx, []string{"before"})
				return err
			},
			"UpsertCompany": func() error { return s.UpsertCompany(ctx, authz.Company{ID: "after", Name: "After"}) },
			"UpsertMembership": func() error {
				return s.UpsertMembership(ctx, authz.Membership{UserID: "u", CompanyID: "before", Role: authz.RoleOwner, Status: authz.StatusActive})
			},
			"DeleteMembership": func() error { return s.DeleteMembership(ctx, "u", "before") },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, authz.ErrUnavailable) {
				t.Errorf("%s on a stopped server = %v, want ErrUnavailable", name, err)
			}
		}
	})
}

func openStore(t *testing.T, dbURL string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func upsertAll(t *testing.T, s *store.Store, companies ...authz.Company) {
	t.Helper()
	for _, c := range companies {
		if err := s.UpsertCompany(t.Context(), c); err != nil {
			t.Fatalf("UpsertCompany(%+v): %v", c, err)
		}
	}
}

func jsonLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, nil))
}

func countApplied(log *bytes.Buffer) int {
	return strings.Count(log.String(), `"msg":"applied migration"`)
}

func appliedVersions(t *testing.T, dbURL string) []string {
	t.Helper()
	return queryStrings(t, dbURL, `
		select version_id::text from tenantgate.schema_migrations
		where version_id > 0 and is_applied order by id`)
}

func execSQL(t *testing.T, dbURL string, stmts ...string) {
	t.Helper()
	conn := connect(t, dbURL)
	defer conn.Close(t.Context())
	for _, stmt := range stmts {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func queryRow(t *testing.T, dbURL, sql string, dest ...any) {
	t.Helper()
	conn := connect(t, dbURL)
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryStrings(t *testing.T, dbURL, sql string) []string {
	t.Helper()
	conn := connect(t, dbURL)
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitFor polls cond until it holds, failing t after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("waiting for %s", what)
	})
}

func stringsOf[T ~string](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// TestApplicationWritesNeedNoTenantgatePrivileges: the triggers migrations
// put on the application's tables (incarnations, the change clock) write to
// tenantgate's own schema; an application user that may write companies and
// memberships, and nothing of tenantgate's, must still be able to, or the
// migration would break the application it serves.
func TestApplicationWritesNeedNoTenantgatePrivileges(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	role := "app_writer_" + strings.ToLower(rand.Text()[:8])
	for _, stmt := range []string{
		"create role " + role + " login password 'app'",
		"grant select, insert, update, delete, truncate on companies, company_memberships to " + role,
	} {
		queryStrings(t, dbURL, stmt)
	}
	t.Cleanup(func() {
		// t.Context() is over by now.
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		for _, stmt := range []string{"drop owned by " + role, "drop role " + role} {
			if _, err := conn.Exec(context.Background(), stmt); err != nil {
				t.Error(err)
			}
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "app")
	conn, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{
		"insert into companies (id, name) values ('app-co', 'App Co'), ('app-kid', 'Kid')",
		"update companies set parent_id = 'app-co' where id = 'app-kid'",
		"insert into company_memberships (user_id, company_id, role) values ('ann', 'app-co', 'owner')",
		"update company_memberships set role = 'admin' where user_id = 'ann'",
		"delete from company_memberships where user_id = 'ann'",
		"delete from companies where id = 'app-kid'",
		"truncate companies, company_memberships",
	} {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Errorf("%s as an application user: %v", stmt, err)
		}
	}
}
