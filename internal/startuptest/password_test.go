package startuptest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// appRole is the role tenantgate logs in as on a cluster that checks
// passwords; the tests change its password under the processes.
const appRole = "tenantgate_app"

// refusedPassword is what a process says of a password PostgreSQL refuses.
const refusedPassword = "PostgreSQL refused the password"

// TestSyncRefusesAWrongPassword: a password PostgreSQL refuses ends
// `tenantgate sync` with the cause and its fix instead of being retried
// for ever: at start at once, long before --startup-timeout, whether it
// comes from the flag or a file (the file is read as it is now: there is
// no stale copy to wait out); while running, once the grace for a
// rotation in progress (mirror's passwordGrace, 30s) has passed.
func TestSyncRefusesAWrongPassword(t *testing.T) {
	t.Parallel()
	pt := startPasswordTopology(t)
	wrong := pt.roleURL(t, "not-"+pt.password)
	file := filepath.Join(t.TempDir(), "database-url")
	writeSecret(t, file, wrong)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"at start, from the flag", []string{"--database-url", wrong}},
		{"at start, from a file", []string{"--database-url-file", file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "sync", append(append([]string{"sync", "--metrics-addr", freeAddr(t), "--startup-timeout", "10m"},
				tc.flags...), pt.spiceDBFlags()...)...)
			p.awaitFailure(time.Minute, refusedPassword)
		})
	}
	t.Run("while running, from a file", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "database-url")
		writeSecret(t, file, pt.roleURL(t, pt.password))
		p := start(t, "sync", append([]string{"sync", "--metrics-addr", freeAddr(t), "--database-url-file", file},
			pt.spiceDBFlags()...)...)
		p.awaitReady()
		pt.rotate(t, rand.Text())
		p.awaitFailure(2*time.Minute, refusedPassword+"; retrying", refusedPassword+": fix")
	})
}

// TestSyncAndServeFollowARotatedPassword rotates the password of a file
// given with --database-url-file the only way PostgreSQL allows, ALTER
// ROLE first and the file after, and ends the processes' sessions in
// between so that they must log in again meanwhile: the sync retries the
// refused password until the file has the new one, then carries a change
// made after the rotation to SpiceDB, and the gateway answers from it.
func TestSyncAndServeFollowARotatedPassword(t *testing.T) {
	t.Parallel()
	pt := startPasswordTopology(t)
	file := filepath.Join(t.TempDir(), "database-url")
	writeSecret(t, file, pt.roleURL(t, pt.password))
	iss := newIssuer(t)
	flags := append([]string{"--database-url-file", file}, pt.spiceDBFlags()...)
	sync := start(t, "sync", append([]string{"sync", "--metrics-addr", freeAddr(t)}, flags...)...)
	gw := start(t, "serve", append(append([]string{"serve", "--http-addr", freeAddr(t)}, flags...), iss.fileFlags(t)...)...)
	sync.awaitReady()
	gw.awaitReady()
	gw.allows(iss, "alice", true)

	newPassword := rand.Text()
	pt.rotate(t, newPassword)
	sync.awaitLog(refusedPassword + "; retrying")
	writeSecret(t, file, pt.roleURL(t, newPassword))
	sync.awaitReady()
	gw.awaitReady()

	pt.exec(t, `INSERT INTO company_memberships (user_id, company_id, role) VALUES ('bob', 'acme', 'viewer')`)
	testutil.Eventually(t, readyBound, func() error {
		sync.alive()
		gw.alive()
		a := ask(t, gw.addr, iss.token(t, "bob"))
		var v struct {
			Allowed bool `json:"allowed"`
		}
		if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &v) != nil || !v.Allowed {
			return fmt.Errorf("bob's check answered %v, want allowed", a)
		}
		return nil
	})
}

// passwordTopology is a testutil.Topology whose application database is
// on a cluster of its own that checks passwords, with appRole to log in
// as.
type passwordTopology struct {
	*testutil.Topology
	// password is appRole's at start.
	password string
}

// startPasswordTopology starts a cluster that asks every TCP login for a
// password, migrates and seeds an application database on it, creates
// appRole (a superuser: the sync's privileges are not what is tested)
// and starts SpiceDB on a datastore of the shared test server.
func startPasswordTopology(t *testing.T) passwordTopology {
	t.Helper()
	// rand.Text is letters and digits: it needs no quoting in SQL or URLs.
	pg := testutil.NewTestPostgresWith(t, devenv.PostgresOptions{Password: rand.Text()})
	pt := passwordTopology{Topology: testutil.StartTopology(t, testutil.TopologyOptions{AppURL: testutil.NewAppDatabase(t, pg), Seed: seed}),
		password: rand.Text()}
	pt.exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'", appRole, pt.password))
	return pt
}

// roleURL is the application database's URL for appRole with password.
func (pt passwordTopology) roleURL(t *testing.T, password string) string {
	t.Helper()
	u, err := url.Parse(pt.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(appRole, password)
	return u.String()
}

// spiceDBFlags point a tenantgate command at the topology's SpiceDB.
func (pt passwordTopology) spiceDBFlags() []string {
	return []string{"--spicedb-endpoint", pt.SpiceDB.Endpoint(), "--spicedb-token", pt.SpiceDB.Token(), "--spicedb-insecure"}
}

// rotate changes appRole's password and ends its sessions, so that every
// process logged in as it must log in again.
func (pt passwordTopology) rotate(t *testing.T, password string) {
	t.Helper()
	pt.exec(t, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", appRole, password))
	pt.exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+appRole+"'")
}

// awaitFailure waits, up to within, for the process to exit with an error
// and fails the test unless it did and its output holds each of outputs.
func (p *proc) awaitFailure(within time.Duration, outputs ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), within)
	defer cancel()
	err := p.Wait(ctx)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		p.t.Fatalf("%s did not exit with an error within %v: %v\n%s", p.name, within, err, p.Output())
	}
	for _, want := range outputs {
		if !strings.Contains(p.Output(), want) {
			p.t.Errorf("%s's output lacks %q:\n%s", p.name, want, p.Output())
		}
	}
}

// exec runs sql as the superuser on the application database.
func (pt passwordTopology) exec(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := pt.DB.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
