// Package clients_test runs the TypeScript client (clients/typescript) and
// the AppSync Lambda authorizer example (examples/appsync) against a real
// `tenantgate serve`: it starts the gateway in this process over a
// throwaway database, trusts a Cognito-style token issuer of its own, and
// runs npm ci, build, test and the generated-code staleness check with the
// gateway's URL and tokens in the environment.
package clients_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

const (
	serviceToken = "clients-test-service-token-0123456789"
	// The issuer and app client of a Cognito user pool, as the gateway is
	// configured for one: --audience is the app client ID, which Cognito
	// access tokens carry as client_id (they have no aud), and
	// --token-use access refuses the pool's ID tokens.
	issuerURL = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TenantGT"
	clientID  = "tenantgate-clients-test-app-client"
	// supportGroup is a Cognito group the gateway maps to a platform role.
	supportGroup = "platform-support"
)

// seed is the application's data, written before the gateway starts so that
// it arrives through the sync's snapshot. The TypeScript tests assert on
// it: change both together.
//
//	acme (alice owner)
//	├── acme-berlin
//	└── acme-paris (bob viewer)
//	globex (bob editor, carol admin)
//	initech (erin viewer, inactive)
const seed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('acme', 'ACME Holding', NULL),
  ('acme-paris', 'ACME Paris', 'acme'),
  ('acme-berlin', 'ACME Berlin', 'acme'),
  ('globex', 'Globex', NULL),
  ('initech', 'Initech', NULL);
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('alice', 'acme', 'owner', 'active'),
  ('bob', 'acme-paris', 'viewer', 'active'),
  ('bob', 'globex', 'editor', 'active'),
  ('carol', 'globex', 'admin', 'active'),
  ('erin', 'initech', 'viewer', 'inactive');
`

// users get a valid Cognito-style access token each. frank and grace start
// without memberships: the client's management tests create their own
// companies with them, so the lists of the others stay as seeded.
var users = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}

// The npm packages, relative to this directory; the example depends on the
// client through a file: link, so the client is built first.
var packages = []struct{ name, dir string }{
	{"client", "typescript"},
	{"appsync", filepath.Join("..", "examples", "appsync")},
}

func TestTypeScript(t *testing.T) {
	npm := requireNode(t)
	for _, p := range packages {
		noteSources(t, p.dir)
	}
	gw := startGateway(t)
	env := gw.environment(t)

	clientBuilt := false
	for _, p := range packages {
		dir, err := filepath.Abs(p.dir)
		if err != nil {
			t.Fatal(err)
		}
		if p.name == "appsync" && !clientBuilt {
			t.Error("the client did not build: the AppSync example, which depends on its build, is not run")
			break
		}
		t.Run(p.name, func(t *testing.T) {
			if !t.Run("install", func(t *testing.T) { npmCI(t, npm, dir) }) {
				t.FailNow()
			}
			if p.name == "client" {
				// A stale src/generated/schema.ts fails this, not the rest.
				t.Run("check-generated", func(t *testing.T) { runNPM(t, npm, dir, nil, 2*time.Minute, "run", "check-generated") })
			}
			if !t.Run("build", func(t *testing.T) { runNPM(t, npm, dir, nil, 5*time.Minute, "run", "build") }) {
				t.FailNow()
			}
			if p.name == "client" {
				clientBuilt = true
			}
			t.Run("test", func(t *testing.T) {
				out := runNPM(t, npm, dir, env, 10*time.Minute, "test")
				t.Logf("npm test in %s:\n%s", p.dir, tail(out, 200))
			})
		})
	}
	gw.checkIndexAgreed(t)
}

// requireNode finds npm and checks that node is at least version 20; a
// machine without them fails the test, never skips it.
func requireNode(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not on PATH (%v): the TypeScript client and AppSync example tests (clients/typescript, examples/appsync) need Node.js 20 or later with npm on PATH; install them and run again", err)
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v: the TypeScript tests need Node.js 20 or later on PATH", err)
	}
	m := regexp.MustCompile(`^v(\d+)\.`).FindSubmatch(bytes.TrimSpace(out))
	if m == nil {
		t.Fatalf("node --version said %q: want v20 or later", out)
	}
	if major, _ := strconv.Atoi(string(m[1])); major < 20 {
		t.Fatalf("node is %s: the TypeScript tests need Node.js 20 or later", bytes.TrimSpace(out))
	}
	return npm
}

// noteSources stats every source file of an npm package, so that go test's
// cache, which records the files a test opens or stats, reruns this test
// when one of them changes.
func noteSources(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "dist", "dist-test":
				return filepath.SkipDir
			}
			return nil
		}
		_, err = os.Stat(path)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join("..", "internal", "gateway", "openapi.yaml")); err != nil {
		t.Fatal(err)
	}
}

// npmCI installs a package's dependencies exactly as its package-lock.json
// says, once: a stamp in node_modules records the lock file it installed,
// and an install that already matches is not repeated. npm's own cache
// (--prefer-offline) serves packages downloaded before.
func npmCI(t *testing.T, npm, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("%s has no package-lock.json: %v", dir, err)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	node, _ := exec.Command("node", "--version").Output()
	sum := sha256.Sum256(bytes.Join([][]byte{lock, manifest, node}, []byte{0}))
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", ".tenantgate-npm-ci")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		t.Logf("%s: node_modules already matches package-lock.json", dir)
		return
	}
	start := time.Now()
	runNPM(t, npm, dir, nil, 10*time.Minute, "ci", "--prefer-offline")
	t.Logf("npm ci in %s took %s", dir, time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runNPM runs npm with args in dir, with env added to this process's
// environment, and fails the test with npm's output when it fails.
func runNPM(t *testing.T, npm, dir string, env []string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false",
		"NO_COLOR=1", "FORCE_COLOR=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("npm %s in %s did not finish within %s:\n%s", strings.Join(args, " "), dir, timeout, out)
	}
	if err != nil {
		t.Fatalf("npm %s in %s failed (%v) after %s:\n%s", strings.Join(args, " "), dir, err, time.Since(start).Round(time.Millisecond), out)
	}
	t.Logf("npm %s in %s: %s", strings.Join(args, " "), dir, time.Since(start).Round(time.Millisecond))
	return string(out)
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("... (%d lines before)", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

// gateway is a running `tenantgate serve` and the issuer it trusts.
type gateway struct {
	url    string
	issuer *devenv.Issuer
}

// startGateway runs `tenantgate serve` in this process as
// internal/app's embedded harness does: embedded SpiceDB, the sync
// in-process, a fresh migrated database with seed applied before it starts,
// the issuer's key set in a file, every index answer re-asked of SpiceDB.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	start := time.Now()
	dbURL := testutil.NewTestDatabase(t)
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	pool.Close()

	issuer, err := devenv.GenerateIssuer(issuerURL, clientID)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := issuer.WriteJWKSFile(jwksFile); err != nil {
		t.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = issuer.Issuer(), issuer.Audience()
	cfg.TokenUse = "access"
	cfg.GroupsClaim = "cognito:groups"
	cfg.PlatformRoles = []string{supportGroup + "=viewer"}
	cfg.ServiceToken = serviceToken
	cfg.IndexVerifyFraction = 1
	cfg.LogLevel = "warn"
	gw := &gateway{url: servetest.Start(t, cfg), issuer: issuer}
	t.Logf("tenantgate serve ready at %s after %s", gw.url, time.Since(start).Round(time.Millisecond))
	return gw
}

// accessToken mints what a Cognito user pool issues as an access token:
// no aud, the app client in client_id, token_use access, the groups in
// cognito:groups; extra overrides (a nil value removes a claim).
func (g *gateway) accessToken(t *testing.T, user string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{
		"aud":       nil,
		"token_use": "access",
		"client_id": clientID,
		"username":  user,
		"scope":     "aws.cognito.signin.user.admin",
	}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := g.issuer.Mint(user, ttl, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// environment is what the npm tests read: the gateway's URL, a token per
// user (and a few special ones, named user:kind), and the service token.
func (g *gateway) environment(t *testing.T) []string {
	t.Helper()
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = g.accessToken(t, u, time.Hour, nil)
	}
	// support holds the platform role viewer through its Cognito group.
	tokens["support"] = g.accessToken(t, "support", time.Hour, map[string]any{"cognito:groups": []string{supportGroup}})
	// The same pool's ID token: aud is the app client, token_use id; the
	// gateway accepts access tokens only.
	tokens["alice:id-token"] = g.accessToken(t, "alice", time.Hour, map[string]any{
		"aud": []string{clientID}, "token_use": "id", "client_id": nil, "scope": nil,
	})
	tokens["alice:expired"] = g.accessToken(t, "alice", -time.Hour, nil)
	tokens["alice:other-client"] = g.accessToken(t, "alice", time.Hour, map[string]any{"client_id": "another-app-client"})
	raw, err := json.Marshal(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"TENANTGATE_URL=" + g.url,
		"TENANTGATE_TOKENS=" + string(raw),
		"TENANTGATE_SERVICE_TOKEN=" + serviceToken,
		"TENANTGATE_COGNITO_CLIENT_ID=" + clientID,
	}
}

// checkIndexAgreed fails the test when the gateway's permission index gave
// an answer SpiceDB does not give at the same revision (every index answer
// was re-asked: --index-verify-fraction 1).
func (g *gateway) checkIndexAgreed(t *testing.T) {
	t.Helper()
	const name = `tenantgate_index_verifications_total{result="mismatch"}`
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(g.url + "/metrics")
	if err != nil {
		t.Errorf("metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if n, err := strconv.ParseFloat(v, 64); err != nil || n != 0 {
				t.Errorf("%s = %s: the index answered differently from SpiceDB (see the log)", name, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Errorf("metrics: %v", err)
	}
}
