package outagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// seed is a holding with a subsidiary: alice owns the holding, bob views
// it. Every outage revokes bob and grants carol while it lasts.
const seed = `
INSERT INTO companies (id, name, parent_id) VALUES ('acme', 'ACME', NULL), ('acme-fr', 'ACME France', 'acme');
INSERT INTO company_memberships (user_id, company_id, role) VALUES ('alice', 'acme', 'owner'), ('bob', 'acme', 'viewer');`

// The change every outage makes while it lasts, which must not be lost
// (grantCarolRequest makes grantCarol through the management API), and who
// may read acme before and after it.
const (
	revokeBob  = `DELETE FROM company_memberships WHERE user_id = 'bob'`
	grantCarol = `INSERT INTO company_memberships (user_id, company_id, role) VALUES ('carol', 'acme', 'viewer')`
)

var (
	readersBefore = map[string]bool{"alice": true, "bob": true, "carol": false}
	readersAfter  = map[string]bool{"alice": true, "bob": false, "carol": true}
)

// requestTimeout is the gateway's deadline for the backend calls of one
// request (the default of gateway.Config.RequestTimeout, which serve does
// not change).
const requestTimeout = 10 * time.Second

// staleness is --max-staleness for gateways whose answers from the
// permission index, or with Postgres down, must turn to 503 within a test.
const staleness = 2 * time.Second

// request is one API call, made as some user.
type request struct {
	method, path, body string
}

// The questions a gateway needs SpiceDB (or its permission index, which
// SpiceDB feeds) and Postgres for.
var (
	checkAcme       = request{"POST", "/v1/check", `{"permission":"read","company":"acme"}`}
	bulkCheckAcme   = request{"POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"acme"}]}`}
	listReadable    = request{"GET", "/v1/companies?permission=read", ""}
	permissionsAcme = request{"GET", "/v1/companies/acme/permissions", ""}
	reads           = []request{checkAcme, bulkCheckAcme, listReadable, permissionsAcme}

	grantCarolRequest = request{"PUT", "/v1/companies/acme/members/carol", `{"role":"viewer"}`}
)

// answer is what a gateway said.
type answer struct {
	status      int
	contentType string
	retryAfter  string
	body        string
}

func (a answer) String() string { return fmt.Sprintf("%d %s %s", a.status, a.contentType, a.body) }

// failedClosed reports why a is not a 503 problem with Retry-After: what a
// gateway must answer when a dependency cannot, and never an allow.
func failedClosed(a answer) error {
	if a.status != http.StatusServiceUnavailable || a.contentType != "application/problem+json" || a.retryAfter == "" {
		return fmt.Errorf("answered %v (Retry-After %q), want a 503 problem with Retry-After", a, a.retryAfter)
	}
	return nil
}

// allowed reads a 200 answer of POST /v1/check.
func allowed(a answer) (bool, error) {
	if a.status != http.StatusOK {
		return false, fmt.Errorf("answered %v, want 200", a)
	}
	var v struct {
		Allowed *bool `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(a.body), &v); err != nil || v.Allowed == nil {
		return false, fmt.Errorf("answered %v, want a decision", a)
	}
	return *v.Allowed, nil
}

// issuer is the identity provider of a test's gateways, with a token for
// each of its users.
type issuer struct {
	t *testing.T
	*devenv.Issuer
}

func newIssuer(t *testing.T) issuer {
	t.Helper()
	i, err := devenv.GenerateIssuer("https://issuer.test", "tenantgate-test")
	if err != nil {
		t.Fatal(err)
	}
	return issuer{t: t, Issuer: i}
}

// token is a fresh token of user: a token never seen before, so the
// gateway's token cache cannot answer for its key.
func (i issuer) token(user string) string {
	i.t.Helper()
	tok, err := i.Mint(user, time.Hour, nil)
	if err != nil {
		i.t.Fatal(err)
	}
	return tok
}

// fileFlags are the identity flags of a gateway that reads the issuer's
// keys from a file.
func (i issuer) fileFlags() []string {
	i.t.Helper()
	path := filepath.Join(i.t.TempDir(), "jwks.json")
	if err := i.WriteJWKSFile(path); err != nil {
		i.t.Fatal(err)
	}
	return []string{"--jwks-file", path, "--issuer", i.Issuer.Issuer(), "--audience", i.Audience()}
}

// gateway is a `tenantgate serve` process.
type gateway struct {
	t    *testing.T
	name string
	addr string
	proc *testutil.Process
}

// startGateway runs `tenantgate serve` with flags and returns once it is
// ready. Its users are not rate limited: tests poll faster than people.
func startGateway(t *testing.T, name string, flags ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, name: name, addr: freeAddr(t)}
	g.proc = testutil.StartTenantgate(t, name, append([]string{"serve", "--http-addr", g.addr, "--rate-limit-user", "0"}, flags...)...)
	showLogIfFailed(t, name, g.proc)
	testutil.Eventually(t, 2*time.Minute, func() error {
		g.alive()
		return g.ready(http.StatusOK)
	})
	return g
}

// alive fails the test if the process has exited: a gateway must live
// through every outage.
func (g *gateway) alive() {
	g.t.Helper()
	select {
	case <-g.proc.Done():
		g.t.Fatalf("%s exited:\n%s", g.name, g.proc.Output())
	default:
	}
}

// ready reports why /readyz does not answer want.
func (g *gateway) ready(want int) error {
	if got := testutil.Readyz(g.addr); got != want {
		return fmt.Errorf("%s /readyz = %d, want %d", g.name, got, want)
	}
	return nil
}

// ask sends r with bearer token.
func (g *gateway) ask(r request, token string) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, "http://"+g.addr+r.path, strings.NewReader(r.body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s %s: %w", g.name, r.method, r.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s %s: %w", g.name, r.method, r.path, err)
	}
	return answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		retryAfter: resp.Header.Get("Retry-After"), body: string(body)}, nil
}

// decides reports why the gateway does not answer, for each user of
// want, whether they may read acme as want says.
func (g *gateway) decides(iss issuer, want map[string]bool) error {
	var errs []error
	for user, wantAllowed := range want {
		a, err := g.ask(checkAcme, iss.token(user))
		if err != nil {
			return err
		}
		got, err := allowed(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: may %s read acme: %w", g.name, user, err))
		case got != wantAllowed:
			errs = append(errs, fmt.Errorf("%s: may %s read acme: allowed %v, want %v", g.name, user, got, wantAllowed))
		}
	}
	return errors.Join(errs...)
}

// failsClosed reports why any of rs, asked with token, is not a 503
// problem.
func (g *gateway) failsClosed(token string, rs ...request) error {
	var errs []error
	for _, r := range rs {
		a, err := g.ask(r, token)
		if err != nil {
			return err
		}
		if err := failedClosed(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %s %s: %w", g.name, r.method, r.path, err))
		}
	}
	return errors.Join(errs...)
}

// startSync runs `tenantgate sync` on topo and returns its ops address.
func startSync(t *testing.T, topo *testutil.Topology) (*testutil.Process, string) {
	t.Helper()
	addr := freeAddr(t)
	p := testutil.StartTenantgate(t, "sync", append([]string{"sync", "--metrics-addr", addr}, topo.RemoteFlags()...)...)
	showLogIfFailed(t, "sync", p)
	testutil.AwaitReadyz(t, addr, http.StatusOK, 2*time.Minute)
	return p, addr
}

// showLogIfFailed logs the tail of p's log when the test has failed.
func showLogIfFailed(t *testing.T, name string, p *testutil.Process) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, p.Output())
		}
	})
}

// recovered waits until the sync and every gateway are ready again by
// themselves, SpiceDB holds every change, and the gateways answer as the
// rows say; none of the processes was restarted.
func recovered(t *testing.T, topo *testutil.Topology, iss issuer, syncProc *testutil.Process, syncAddr string, gateways ...*gateway) {
	t.Helper()
	// The sync retries with a backoff of up to 30 s.
	const bound = time.Minute
	began := time.Now()
	defer func() { t.Logf("recovered in %v", time.Since(began).Round(time.Millisecond)) }()
	testutil.AwaitReadyz(t, syncAddr, http.StatusOK, bound)
	converged(t, topo)
	for _, g := range gateways {
		testutil.Eventually(t, bound, func() error {
			g.alive()
			if err := g.ready(http.StatusOK); err != nil {
				return err
			}
			return g.decides(iss, readersAfter)
		})
	}
	select {
	case <-syncProc.Done():
		t.Fatalf("the sync exited:\n%s", syncProc.Output())
	default:
	}
}

// exec runs sql on the topology's application database.
func exec(t *testing.T, topo *testutil.Topology, sql ...string) {
	t.Helper()
	for _, s := range sql {
		if _, err := topo.DB.Exec(t.Context(), s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}

// converged waits until SpiceDB holds exactly what the application
// database's rows derive: the sync lost nothing.
func converged(t *testing.T, topo *testutil.Topology) {
	t.Helper()
	client, err := spicedb.Dial(spicedb.RemoteConfig{Endpoint: topo.SpiceDB.Endpoint(), Token: topo.SpiceDB.Token(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	testutil.AwaitConverged(t, time.Minute, topo.DB, client)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
