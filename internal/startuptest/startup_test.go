package startuptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// seed gives alice a company to read.
const seed = `INSERT INTO companies (id, name, parent_id) VALUES ('acme', 'ACME', NULL);
INSERT INTO company_memberships (user_id, company_id, role) VALUES ('alice', 'acme', 'owner');`

// readyBound is how long a process may take to log that it waits, and to
// become ready once what it waited for is up.
const readyBound = 2 * time.Minute

// TestServeAndSyncWaitForSpiceDB starts `sync` and `serve` on a remote
// SpiceDB that is not listening yet: both keep answering /healthz and
// refuse /readyz and the API while they wait, and become ready, without a
// restart, once SpiceDB starts.
func TestServeAndSyncWaitForSpiceDB(t *testing.T) {
	t.Parallel()
	tp := testutil.StartTopology(t, testutil.TopologyOptions{Seed: seed})
	// Stopped before anything of tenantgate starts: it comes up later on
	// the same port, as a SpiceDB scheduled after the gateway would.
	if err := tp.SpiceDB.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	iss := newIssuer(t)
	syncAddr := freeAddr(t)
	sync := start(t, "sync", append([]string{"sync", "--metrics-addr", syncAddr}, tp.RemoteFlags()...)...)
	gw := start(t, "serve", append(append([]string{"serve", "--http-addr", freeAddr(t)}, tp.RemoteFlags()...), iss.fileFlags(t)...)...)

	for _, p := range []*proc{sync, gw} {
		p.awaitLog("cannot start yet; retrying")
		p.starting()
	}
	if a := ask(t, gw.addr, iss.token(t, "alice")); a.status != http.StatusServiceUnavailable ||
		a.contentType != "application/problem+json" || a.retryAfter == "" {
		t.Errorf("a check while starting answered %v, want a 503 problem with Retry-After", a)
	}

	if err := tp.SpiceDB.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	sync.awaitReady()
	gw.awaitReady()
	gw.allows(iss, "alice", true)
	gw.allows(iss, "mallory", false)
}

// TestServeWaitsForJWKS starts `serve` (SpiceDB embedded) before the
// identity provider's key set answers: it waits, and verifies tokens once
// the key set is up.
func TestServeWaitsForJWKS(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	jwksAddr := freeAddr(t)
	gw := start(t, "serve", "serve", "--http-addr", freeAddr(t), "--database-url", seededDatabase(t),
		"--jwks-url", "http://"+jwksAddr+devenv.JWKSPath, "--issuer", iss.Issuer.Issuer(), "--audience", iss.Audience())
	gw.awaitLog("cannot start yet; retrying")
	gw.starting()

	ln, err := net.Listen("tcp", jwksAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: iss.Handler(time.Hour, slog.New(slog.DiscardHandler)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { _ = srv.Close() })
	gw.awaitReady()
	gw.allows(iss, "alice", true)
}

// TestStartupEnds: what no retry can cure ends the start at once, and a
// dependency that stays away ends it after --startup-timeout, in both
// cases with the cause.
func TestStartupEnds(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	dbURL := seededDatabase(t)
	missing, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	missing.Path = "/no_such_database"
	nobody := freeAddr(t) // SpiceDB never listens here
	for _, tc := range []struct {
		name    string
		flags   []string
		within  time.Duration
		outputs []string
	}{
		// 10 minutes of --startup-timeout would outlast the test.
		{"database does not exist", []string{"--database-url", missing.String(), "--startup-timeout", "10m"},
			time.Minute, []string{"does not exist"}},
		{"spicedb never answers", []string{"--database-url", dbURL, "--spicedb-endpoint", nobody, "--spicedb-insecure",
			"--startup-timeout", "3s"}, time.Minute, []string{"gave up after --startup-timeout 3s", "cannot start yet; retrying"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "serve", append(append([]string{"serve", "--http-addr", freeAddr(t)}, tc.flags...), iss.fileFlags(t)...)...)
			ctx, cancel := context.WithTimeout(t.Context(), tc.within)
			defer cancel()
			err := p.Wait(ctx)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("serve did not exit with an error within %v: %v\n%s", tc.within, err, p.Output())
			}
			for _, want := range tc.outputs {
				if !strings.Contains(p.Output(), want) {
					t.Errorf("output lacks %q:\n%s", want, p.Output())
				}
			}
		})
	}
}

// proc is a tenantgate process serving HTTP on addr.
type proc struct {
	*testutil.Process
	t    *testing.T
	name string
	addr string
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	addr := ""
	for i, a := range args {
		if (a == "--http-addr" && args[0] == "serve") || (a == "--metrics-addr" && args[0] == "sync") {
			addr = args[i+1]
		}
	}
	p := &proc{Process: testutil.StartTenantgate(t, name, args...), t: t, name: name, addr: addr}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// alive fails the test if the process has exited.
func (p *proc) alive() {
	p.t.Helper()
	select {
	case <-p.Done():
		p.t.Fatalf("%s exited:\n%s", p.name, p.Output())
	default:
	}
}

func (p *proc) awaitLog(want string) {
	p.t.Helper()
	testutil.Eventually(p.t, readyBound, func() error {
		p.alive()
		if !strings.Contains(p.Output(), want) {
			return fmt.Errorf("%s has not logged %q", p.name, want)
		}
		return nil
	})
}

// starting checks what a process answers while it waits: alive, not ready.
func (p *proc) starting() {
	p.t.Helper()
	p.alive()
	if got := get(p.t, p.addr, "/healthz"); got != http.StatusOK {
		p.t.Errorf("%s /healthz = %d while starting, want 200", p.name, got)
	}
	if got := testutil.Readyz(p.addr); got != http.StatusServiceUnavailable {
		p.t.Errorf("%s /readyz = %d while starting, want 503", p.name, got)
	}
}

func (p *proc) awaitReady() {
	p.t.Helper()
	testutil.Eventually(p.t, readyBound, func() error {
		p.alive()
		if got := testutil.Readyz(p.addr); got != http.StatusOK {
			return fmt.Errorf("%s /readyz = %d, want 200; output:\n%s", p.name, got, p.Output())
		}
		return nil
	})
}

// allows checks that the gateway answers user's check of acme with want.
func (p *proc) allows(iss issuer, user string, want bool) {
	p.t.Helper()
	a := ask(p.t, p.addr, iss.token(p.t, user))
	var v struct {
		Allowed *bool `json:"allowed"`
	}
	if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &v) != nil || v.Allowed == nil {
		p.t.Fatalf("check of %s answered %v, want a decision", user, a)
	}
	if *v.Allowed != want {
		p.t.Errorf("%s may read acme: %v, want %v", user, *v.Allowed, want)
	}
}

type answer struct {
	status                        int
	contentType, retryAfter, body string
}

func (a answer) String() string { return fmt.Sprintf("%d %s %s", a.status, a.contentType, a.body) }

// ask asks addr whether the token's user may read acme.
func ask(t *testing.T, addr, token string) answer {
	t.Helper()
	return call(t, addr, token, "POST", "/v1/check", `{"permission":"read","company":"acme"}`)
}

// call sends a request with the bearer token and a JSON body ("": none).
func call(t *testing.T, addr, token, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), string(out)}
}

func get(t *testing.T, addr, path string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

type issuer struct{ *devenv.Issuer }

func newIssuer(t *testing.T) issuer {
	t.Helper()
	i, err := devenv.GenerateIssuer("https://issuer.test", "tenantgate-test")
	if err != nil {
		t.Fatal(err)
	}
	return issuer{i}
}

func (i issuer) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := i.Mint(user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fileFlags read the issuer's keys from a file: no key set to wait for.
func (i issuer) fileFlags(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := i.WriteJWKSFile(path); err != nil {
		t.Fatal(err)
	}
	return []string{"--jwks-file", path, "--issuer", i.Issuer.Issuer(), "--audience", i.Audience()}
}

// seededDatabase is a new application database holding seed.
func seededDatabase(t *testing.T) string {
	t.Helper()
	dbURL := testutil.NewTestDatabase(t)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

func statusIs(got, want int, what string) error {
	if got != want {
		return fmt.Errorf("%s answered %d, want %d", what, got, want)
	}
	return nil
}
