package startuptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// These tests put a real PgBouncer (Debian's 1.18) between tenantgate and
// PostgreSQL, for what docs/operations.md says under "Behind PgBouncer".
//
// An idle PgBouncer reuses its most recently used server connection, so a
// lone client in transaction mode keeps landing on one backend and nothing
// a pooler breaks shows. A busy pooler hands the next transaction to
// whichever backend is free; busyPooler gets that deterministically with
// server_round_robin and a pool of several server connections.

// poolerBackends is how many server connections busyPooler opens: enough
// that two consecutive transactions of one client never share one.
const poolerBackends = 3

// busyPooler starts PgBouncer in transaction mode in front of dbURL's
// server with poolerBackends server connections that it hands out in turn,
// and returns dbURL through it.
func busyPooler(t *testing.T, dbURL string) string {
	t.Helper()
	pgb := testutil.StartPgBouncer(t, dbURL, testutil.PgBouncerOptions{PoolMode: "transaction",
		// No sanity query on connections idle for 30s (a slow machine
		// gets there): it could change which one a client gets next.
		Settings: []string{"server_round_robin = 1", "server_check_query ="}})
	through := pgb.URL(dbURL)
	// Clients each inside a transaction at once make PgBouncer open a
	// server connection per client; they stay pooled after the clients go.
	var conns []*pgx.Conn
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for range poolerBackends {
		c, err := pgx.Connect(t.Context(), through)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Exec(t.Context(), "begin; select 1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		if _, err := c.Exec(t.Context(), "commit"); err != nil {
			t.Fatal(err)
		}
	}
	return through
}

// withQuery is dbURL with query parameter key=value added.
func withQuery(t *testing.T, dbURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func portOf(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// doctorReport is what `doctor --json` prints.
type doctorReport struct {
	OK     bool           `json:"ok"`
	Checks []mirror.Check `json:"checks"`
}

func (r doctorReport) check(name string) (mirror.Check, bool) {
	i := slices.IndexFunc(r.Checks, func(c mirror.Check) bool { return c.Name == name })
	if i < 0 {
		return mirror.Check{}, false
	}
	return r.Checks[i], true
}

// runDoctor runs `tenantgate doctor --json` with args and returns the
// report it printed, what it wrote to stderr and its exit error.
func runDoctor(t *testing.T, bin string, args ...string) (doctorReport, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), readyBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"doctor", "--json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r doctorReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("doctor --json printed what does not parse (%v; exit: %v):\n%s\nstderr:\n%s", err, runErr, stdout.String(), stderr.String())
	}
	return r, stderr.String(), runErr
}

// wantCheck is what one check of doctor's report must say: its status, and
// words its detail and its fix must hold.
type wantCheck struct {
	status      mirror.Status
	detail, fix []string
}

// TestDoctorThroughPgBouncer runs `doctor --json` through PgBouncer. Each
// mode fails the replication connection (PgBouncer 1.18 refuses the
// replication startup parameter in any pool mode); what the pooler
// heuristic says depends on the mode and on how busy the pooler is.
func TestDoctorThroughPgBouncer(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	// Built before any pooler starts, which then needs no more patience
	// than the doctor itself.
	bin, err := testutil.BuildTenantgate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	replicationRefused := wantCheck{status: mirror.StatusFail,
		detail: []string{"unsupported startup parameter: replication"}, fix: []string{"poolers do not pass them"}}
	for _, tc := range []struct {
		name string
		// through starts PgBouncer and returns dbURL through it.
		through func(t *testing.T) string
		want    map[string]wantCheck
		// portWarning is whether "direct connection" must be the warning
		// about the port, naming PgBouncer's port and PostgreSQL's.
		portWarning bool
	}{
		{
			// Each transaction runs on another backend, and pgx describes
			// statements on the one it runs them on, so the heuristic sees it.
			name: "transaction mode, busy, describe cache",
			through: func(t *testing.T) string {
				return withQuery(t, busyPooler(t, dbURL), "default_query_exec_mode", "cache_describe")
			},
			want: map[string]wantCheck{
				"replication connection": replicationRefused,
				"direct connection": {status: mirror.StatusFail,
					detail: []string{"different server processes", "transaction pooler"},
					fix:    []string{"PgBouncer in transaction mode"}},
			},
		},
		{
			// pgx's default statement cache prepares a statement on one
			// backend and runs it on the next: doctor fails on its first
			// query and never reaches the pooler verdict, but the error's
			// code is one only a transaction pooler causes.
			name:    "transaction mode, busy, statement cache",
			through: func(t *testing.T) string { return busyPooler(t, dbURL) },
			want: map[string]wantCheck{
				"postgres": {status: mirror.StatusFail, detail: []string{"prepared statement", "does not exist", "26000"},
					fix: []string{"transaction pooler", "PostgreSQL itself", "cache_describe"}},
			},
		},
		{
			// A lone client on an idle pooler gets the same backend back:
			// the heuristic sees only the port.
			name: "transaction mode, idle",
			through: func(t *testing.T) string {
				return testutil.StartPgBouncer(t, dbURL, testutil.PgBouncerOptions{PoolMode: "transaction"}).URL(dbURL)
			},
			want:        map[string]wantCheck{"replication connection": replicationRefused},
			portWarning: true,
		},
		{
			name: "session mode",
			through: func(t *testing.T) string {
				return testutil.StartPgBouncer(t, dbURL, testutil.PgBouncerOptions{PoolMode: "session"}).URL(dbURL)
			},
			want:        map[string]wantCheck{"replication connection": replicationRefused},
			portWarning: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			through := tc.through(t)
			r, stderr, err := runDoctor(t, bin, "--database-url", through)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || r.OK {
				t.Errorf("doctor exited with %v and ok %v, want status 1 and ok false", err, r.OK)
			}
			want := tc.want
			if tc.portWarning {
				want = withCheck(want, "direct connection", wantCheck{status: mirror.StatusWarn,
					detail: []string{fmt.Sprintf("the URL names port %s but the server accepted the session on %s",
						portOf(t, through), portOf(t, dbURL))},
					fix: []string{"transaction pooler", "session pooler is fine"}})
			}
			for name, w := range want {
				c, ok := r.check(name)
				if !ok {
					t.Errorf("no %q check in the report", name)
					continue
				}
				if c.Status != w.status {
					t.Errorf("%q is %s (%s), want %s", name, c.Status, c.Detail, w.status)
				}
				for _, words := range w.detail {
					if !strings.Contains(c.Detail, words) {
						t.Errorf("%q detail lacks %q: %s", name, words, c.Detail)
					}
				}
				for _, words := range w.fix {
					if !strings.Contains(c.Fix, words) {
						t.Errorf("%q fix lacks %q: %s", name, words, c.Fix)
					}
				}
			}
			if t.Failed() {
				out, _ := json.MarshalIndent(r, "", "  ")
				t.Logf("report:\n%s\nstderr:\n%s", out, stderr)
			}
		})
	}
}

// withCheck is m with name set to c, leaving m as it was.
func withCheck(m map[string]wantCheck, name string, c wantCheck) map[string]wantCheck {
	out := map[string]wantCheck{name: c}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestStoreThroughPgBouncer runs the gateway's management operations
// (create a company, add a member, list the members) on a store opened
// through PgBouncer, per pool mode and pgx query execution mode (the URL's
// default_query_exec_mode, which pgx reads from the connection string).
func TestStoreThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		busy bool
		// execMode is default_query_exec_mode; empty keeps pgx's default,
		// cache_statement.
		execMode string
		// wantErr holds words of the error the operations end with; empty
		// means they all succeed.
		wantErr string
	}{
		{name: "session mode"},
		{name: "transaction mode, statement cache", busy: true, wantErr: "prepared statement"},
		{name: "transaction mode, describe cache", busy: true, execMode: "cache_describe"},
		// Without a description pgx must know each argument's type from
		// its Go type, and the audit trail's map for a jsonb column has none.
		{name: "transaction mode, exec", busy: true, execMode: "exec", wantErr: "unable to encode map[string]string"},
		{name: "transaction mode, simple protocol", busy: true, execMode: "simple_protocol", wantErr: "unable to encode map[string]string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dbURL := testutil.NewTestDatabase(t)
			through := ""
			if tc.busy {
				through = busyPooler(t, dbURL)
			} else {
				through = testutil.StartPgBouncer(t, dbURL, testutil.PgBouncerOptions{PoolMode: "session"}).URL(dbURL)
			}
			if tc.execMode != "" {
				through = withQuery(t, through, "default_query_exec_mode", tc.execMode)
			}
			ctx, cancel := context.WithTimeout(t.Context(), readyBound)
			defer cancel()
			s, err := store.Open(ctx, through, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tc.busy {
				rotates(ctx, t, s)
			}
			err = manageCompanies(ctx, s)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("the operations failed: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("the operations ended with %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// rotates checks that two statements of the store ran on different
// backends: the pooler is busy enough for what it breaks to show.
func rotates(ctx context.Context, t *testing.T, s *store.Store) {
	t.Helper()
	var pids [2]int32
	for i := range pids {
		// Simple protocol: no prepared statement for the pooler to lose.
		if err := s.Pool().QueryRow(ctx, "select pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if pids[0] == pids[1] {
		t.Fatalf("two statements ran on backend %d: the pooler does not hand out its connections in turn", pids[0])
	}
}

// manageCompanies does what the gateway's management API does, a few times
// over so each statement meets more than one backend: alice creates
// companies, adds bob to each, and lists their members.
func manageCompanies(ctx context.Context, s *store.Store) error {
	alice := authz.Actor{ID: "alice"}
	for i := range poolerBackends {
		id := "globex-" + strconv.Itoa(i)
		if _, _, err := s.CreateCompany(ctx, alice, authz.Company{ID: id, Name: "Globex"}); err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		bob := authz.Membership{UserID: "bob", CompanyID: id, Role: authz.RoleViewer, Status: authz.StatusActive}
		if _, _, err := s.SetMember(ctx, alice, bob); err != nil {
			return fmt.Errorf("add bob to %s: %w", id, err)
		}
		members, err := s.Members(ctx, alice, id)
		if err != nil {
			return fmt.Errorf("members of %s: %w", id, err)
		}
		got := map[string]authz.Role{}
		for _, m := range members {
			got[m.UserID] = m.Role
		}
		if len(got) != 2 || got["alice"] != authz.RoleOwner || got["bob"] != authz.RoleViewer {
			return fmt.Errorf("members of %s: %v, want alice owner and bob viewer", id, members)
		}
	}
	return nil
}

// TestServeThroughPgBouncer runs `serve` (remote SpiceDB) with its
// --database-url through PgBouncer in transaction mode, and `sync` on
// PostgreSQL itself. With pgx's default statement cache the gateway
// becomes ready and answers checks (they ask SpiceDB), but its management
// API fails; with default_query_exec_mode=cache_describe it creates a
// company, adds a member and lists the members.
func TestServeThroughPgBouncer(t *testing.T) {
	t.Parallel()
	tp := testutil.StartTopology(t, testutil.TopologyOptions{Seed: seed})
	sync := start(t, "sync", append([]string{"sync", "--metrics-addr", freeAddr(t)}, tp.RemoteFlags()...)...)
	sync.awaitReady()
	for _, tc := range []struct {
		name, execMode, company string
		// broken: the management API answers 500 with this in the log.
		broken string
	}{
		{name: "statement cache", company: "initech", broken: "prepared statement"},
		{name: "describe cache", execMode: "cache_describe", company: "globex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			through := busyPooler(t, tp.AppURL)
			if tc.execMode != "" {
				through = withQuery(t, through, "default_query_exec_mode", tc.execMode)
			}
			iss := newIssuer(t)
			gw := start(t, "serve", append([]string{"serve", "--http-addr", freeAddr(t), "--database-url", through,
				"--sync-slot", tp.SyncSlot, "--spicedb-endpoint", tp.SpiceDB.Endpoint(), "--spicedb-token", tp.SpiceDB.Token(), "--spicedb-insecure"},
				iss.fileFlags(t)...)...)
			gw.awaitReady()
			gw.allows(iss, "alice", true)

			token := iss.token(t, "alice")
			if tc.broken != "" {
				a := call(t, gw.addr, token, "POST", "/v1/companies", `{"id":"`+tc.company+`","name":"Co"}`)
				status, body := a.status, a.body
				if status != http.StatusInternalServerError || !strings.Contains(gw.Output(), tc.broken) {
					t.Errorf("creating a company answered %d (%s), want 500 and %q in the log", status, body, tc.broken)
				}
				return
			}
			for _, step := range []struct{ method, path, body string }{
				{"POST", "/v1/companies", `{"id":"` + tc.company + `","name":"Co"}`},
				{"PUT", "/v1/companies/" + tc.company + "/members/bob", `{"role":"viewer"}`},
				{"GET", "/v1/companies/" + tc.company + "/members", ""},
			} {
				a := call(t, gw.addr, token, step.method, step.path, step.body)
				status, body := a.status, a.body
				if status/100 != 2 {
					t.Fatalf("%s %s answered %d: %s", step.method, step.path, status, body)
				}
				if step.method == "GET" && (!strings.Contains(body, `"bob"`) || !strings.Contains(body, `"alice"`)) {
					t.Errorf("the members of %s lack alice or bob: %s", tc.company, body)
				}
			}
		})
	}
}

// TestMigrateThroughPgBouncer: `migrate` with pgx's default statement
// cache fails through PgBouncer in transaction mode.
func TestMigrateThroughPgBouncer(t *testing.T) {
	t.Parallel()
	bin, err := testutil.BuildTenantgate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	through := busyPooler(t, testutil.NewEmptyTestDatabase(t))
	ctx, cancel := context.WithTimeout(t.Context(), readyBound)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "migrate", "--database-url", through).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "prepared statement") {
		t.Errorf("migrate ended with %v, want a failure on a prepared statement:\n%s", err, out)
	}
}
