package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// The staleness bound of these tests, the gateway's poll interval, and
// what a loaded test machine may add to an answer (scheduling, the HTTP
// round trip).
const (
	testStaleness = 2 * time.Second
	testPoll      = 100 * time.Millisecond
	answerSlack   = 500 * time.Millisecond
)

// staleProbe asks one replica, over and over, whether eve may still read
// vault after her membership was revoked behind a stalled sync.
type staleProbe struct {
	t    *testing.T
	base string
	eve  string
}

func (p staleProbe) ask() (status int, allowed bool) {
	p.t.Helper()
	req, err := http.NewRequest("POST", p.base+"/v1/check", strings.NewReader(`{"permission":"read","company":"vault"}`))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.eve)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans checkAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			p.t.Fatal(err)
		}
	} else if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		p.t.Error("503 without Retry-After")
	}
	return resp.StatusCode, ans.Allowed
}

// revokeBehindStalledSync commits eve's revocation while the sync cannot
// apply it, and requires that the replica stops answering from the frozen
// mirror within the bound plus one poll: until then it may answer with the
// old allow, from then on only 503, with /readyz failing too.
func (p staleProbe) revokeBehindStalledSync(revoke func()) {
	p.t.Helper()
	if code, allowed := p.ask(); code != http.StatusOK || !allowed {
		p.t.Fatalf("eve before the revocation: status %d, allowed %v", code, allowed)
	}
	revoke()
	committed := time.Now()
	for {
		code, allowed := p.ask()
		if code == http.StatusServiceUnavailable {
			break
		}
		if code != http.StatusOK || !allowed {
			p.t.Fatalf("while the sync is stalled: status %d, allowed %v; want the old answer or 503", code, allowed)
		}
		if late := time.Since(committed); late > testStaleness+testPoll+answerSlack {
			p.t.Fatalf("still answering from the frozen mirror %v after the revocation", late)
		}
		time.Sleep(20 * time.Millisecond) // pacing between probes
	}
	p.t.Logf("503 %v after the revocation (bound %v)", time.Since(committed).Round(time.Millisecond), testStaleness)
	for range 20 {
		if code, allowed := p.ask(); code != http.StatusServiceUnavailable {
			p.t.Fatalf("after the first 503: status %d, allowed %v; want 503 until the sync is back", code, allowed)
		}
	}
	if code := testutil.Readyz(strings.TrimPrefix(p.base, "http://")); code != http.StatusServiceUnavailable {
		p.t.Errorf("/readyz = %d while stale, want 503", code)
	}
	p.gauge(1)
}

// recovers requires the deny once the sync is back, and no 503 after it.
func (p staleProbe) recovers() {
	p.t.Helper()
	testutil.Eventually(p.t, time.Minute, func() error {
		if code, allowed := p.ask(); code != http.StatusOK || allowed {
			return fmt.Errorf("status %d, allowed %v; want the deny", code, allowed)
		}
		return nil
	})
	for range 20 {
		if code, allowed := p.ask(); code != http.StatusOK || allowed {
			p.t.Fatalf("after recovery: status %d, allowed %v; want the deny", code, allowed)
		}
	}
	if code := testutil.Readyz(strings.TrimPrefix(p.base, "http://")); code != http.StatusOK {
		p.t.Errorf("/readyz = %d after recovery, want 200", code)
	}
	p.gauge(0)
}

// gauge requires tenantgate_gateway_stale to be want.
func (p staleProbe) gauge(want float64) {
	p.t.Helper()
	if got, err := metric(p.base, "tenantgate_gateway_stale"); err != nil || got != want {
		p.t.Errorf("tenantgate_gateway_stale = %v (%v), want %v", got, err, want)
	}
}

const staleSeed = `
INSERT INTO companies (id, name, parent_id) VALUES ('vault', 'Vault', NULL);
INSERT INTO company_memberships (user_id, company_id, role) VALUES ('keeper', 'vault', 'owner'), ('eve', 'vault', 'viewer');`

// TestStaleMirrorIsNotAnswered: with a remote SpiceDB, `tenantgate sync`
// (a process) is stopped and a membership revoked; `tenantgate serve`
// must not go on allowing from the frozen mirror past --max-staleness.
func TestStaleMirrorIsNotAnswered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topo := startRemoteTopology(t, ctx, staleSeed)
	syncAddr := freeAddr(t)
	syncProc := topo.startSync("sync", syncAddr)
	testutil.AwaitReadyz(t, syncAddr, http.StatusOK, time.Minute)

	issuer, err := devenv.GenerateIssuer("https://issuer.test", "tenantgate-test")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := issuer.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	testutil.StartTenantgate(t, "serve", append([]string{"serve", "--http-addr", addr,
		"--jwks-file", jwksFile, "--issuer", issuer.Issuer(), "--audience", issuer.Audience(),
		"--max-staleness", testStaleness.String(), "--sync-poll-interval", testPoll.String()}, topo.RemoteFlags()...)...)
	testutil.AwaitReadyz(t, addr, http.StatusOK, time.Minute)
	eve, err := issuer.Mint("eve", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	probe := staleProbe{t: t, base: "http://" + addr, eve: eve}

	// An idle database is not stale, however long the sync is away.
	if err := syncProc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	idleSince := time.Now()
	for time.Since(idleSince) < 2*testStaleness {
		if code, allowed := probe.ask(); code != http.StatusOK || !allowed {
			t.Fatalf("idle database, sync stopped: status %d, allowed %v; want the allow", code, allowed)
		}
		time.Sleep(100 * time.Millisecond) // pacing over two bounds
	}

	probe.revokeBehindStalledSync(func() {
		if _, err := topo.DB.Exec(ctx, `delete from company_memberships where user_id = 'eve'`); err != nil {
			t.Fatal(err)
		}
	})
	topo.startSync("sync-again", freeAddr(t))
	probe.recovers()
}

// TestStalledInProcessStreamIsNotAnswered: the same bound holds for the
// sync inside `tenantgate serve` (embedded SpiceDB) when its stream stalls,
// here because its WAL sender is frozen with SIGSTOP.
func TestStalledInProcessStreamIsNotAnswered(t *testing.T) {
	s := startEmbeddedStackWith(t, func(c *app.Config) {
		c.MaxStaleness, c.SyncPollInterval = testStaleness, testPoll
	}, staleSeed)
	probe := staleProbe{t: t, base: s.baseURLs[0], eve: s.token("eve")}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var pid int
	if err := s.db.QueryRow(ctx, `select active_pid from pg_replication_slots
		where database = current_database() and active`).Scan(&pid); err != nil {
		t.Fatalf("the sync's WAL sender: %v", err)
	}
	frozen := false
	resume := func() {
		if frozen {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("resume WAL sender %d: %v", pid, err)
			}
			frozen = false
		}
	}
	t.Cleanup(resume)
	probe.revokeBehindStalledSync(func() {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("freeze WAL sender %d: %v", pid, err)
		}
		frozen = true
		s.exec(`delete from company_memberships where user_id = 'eve'`)
	})
	t.Logf("resuming WAL sender %d", pid)
	resume()
	probe.recovers()
}
