package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

const serviceToken = "test-service-token-0123456789"

// stack is a running tenantgate over a fresh database, with a token issuer
// it trusts, on one of the backends.
type stack struct {
	t        *testing.T
	baseURLs []string // gateway replicas; requests go round-robin
	mu       sync.Mutex
	next     int
	db       *pgxpool.Pool
	issuer   *devenv.Issuer
	client   *http.Client
}

// startFunc starts a stack. seed (plain SQL, as the application would write
// it) runs before the sync starts, so those rows arrive through the snapshot
// and everything later through the stream.
type startFunc func(t *testing.T, seed ...string) *stack

// backends are the deployments every end-to-end suite runs against: one
// suite, two backends.
var backends = []struct {
	name  string
	start startFunc
}{
	// `tenantgate serve` in this process: embedded SpiceDB (memory
	// datastore) and the sync in-process.
	{"embedded", startEmbeddedStack},
	// The production topology as processes: `spicedb serve` on a Postgres
	// datastore, `tenantgate migrate`, one `tenantgate sync` and two
	// `tenantgate serve` replicas against the remote SpiceDB.
	{"remote", startRemoteStack},
}

func forEachBackend(t *testing.T, test func(t *testing.T, start startFunc)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.start) })
	}
}

// newStack makes the parts every backend shares: the database pool with the
// seed applied, and a token issuer whose key set is in jwksFile.
func newStack(t *testing.T, dbURL string, seed []string) (s *stack, jwksFile string) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, sql := range seed {
		if _, err := pool.Exec(context.Background(), sql); err != nil {
			t.Fatalf("seed %q: %v", sql, err)
		}
	}
	issuer, err := devenv.GenerateIssuer("https://issuer.test", "tenantgate-test")
	if err != nil {
		t.Fatalf("token issuer: %v", err)
	}
	jwks, err := issuer.JWKS()
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	jwksFile = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, db: pool, issuer: issuer, client: &http.Client{Timeout: 30 * time.Second}}, jwksFile
}

// checkIndexAgreed fails the test when a gateway's permission index gave an
// answer SpiceDB does not give at the same revision: the stacks verify
// every index answer (--index-verify-fraction 1), so every suite that runs
// on them is also a differential test of the index against SpiceDB.
func (s *stack) checkIndexAgreed() {
	s.t.Helper()
	for _, base := range s.baseURLs {
		mismatches, err := metric(base, `tenantgate_index_verifications_total{result="mismatch"}`)
		if err != nil {
			s.t.Errorf("index verifications of %s: %v", base, err)
			continue
		}
		if mismatches != 0 {
			s.t.Errorf("%s: %v index answers differed from SpiceDB's at the same revision (see the log)", base, mismatches)
		}
	}
}

// serveArgs are the arguments of a `tenantgate serve` process of the stack
// on addr, with backend's flags (a remote SpiceDB, a datastore) after them.
func (s *stack) serveArgs(addr, jwksFile string, backend ...string) []string {
	return append([]string{"serve", "--http-addr", addr,
		"--jwks-file", jwksFile, "--issuer", s.issuer.Issuer(), "--audience", s.issuer.Audience(),
		"--service-token", serviceToken, "--log-level", "warn", "--index-verify-fraction", "1"}, backend...)
}

func startEmbeddedStack(t *testing.T, seed ...string) *stack {
	t.Helper()
	return startEmbeddedStackWith(t, func(*app.Config) {}, seed...)
}

// startEmbeddedStackWith is startEmbeddedStack with configure applied to
// the configuration `serve` runs with.
func startEmbeddedStackWith(t *testing.T, configure func(*app.Config), seed ...string) *stack {
	t.Helper()
	dbURL := testutil.NewTestDatabase(t)
	s, jwksFile := newStack(t, dbURL, seed)
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = s.issuer.Issuer(), s.issuer.Audience()
	cfg.ServiceToken = serviceToken
	cfg.IndexVerifyFraction = 1
	configure(&cfg)
	s.baseURLs = []string{servetest.Start(t, cfg)}
	if cfg.Index {
		t.Cleanup(s.checkIndexAgreed)
	}
	return s
}

func startRemoteStack(t *testing.T, seed ...string) *stack {
	t.Helper()
	return startRemoteStackWith(t, nil, seed...)
}

// startRemoteStackWith is startRemoteStack with serveFlags added to every
// serve process's command line.
func startRemoteStackWith(t *testing.T, serveFlags []string, seed ...string) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dbURL := testutil.NewEmptyTestDatabase(t)
	// Runs after the sync process stopped: its persistent slot would keep
	// the database from being dropped.
	t.Cleanup(func() { dropSlots(t, dbURL) })
	bin, err := testutil.BuildTenantgate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	run := func(name string, args ...string) *testutil.Process {
		t.Helper()
		p, err := testutil.StartProcess(testutil.ProcessOptions{Path: bin, Args: args, LogFile: filepath.Join(logDir, name+".log")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(context.Background()) })
		return p
	}
	sdb, err := testutil.StartSpiceDB(ctx, testutil.SpiceDBOptions{DatastoreURL: testutil.NewEmptyTestDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close(context.Background()) })
	remote := []string{"--database-url", dbURL, "--spicedb-endpoint", sdb.Endpoint(), "--spicedb-token", sdb.Token(), "--spicedb-insecure"}
	if err := run("migrate", append([]string{"migrate"}, remote...)...).Wait(ctx); err != nil {
		t.Fatalf("tenantgate migrate: %v", err)
	}
	s, jwksFile := newStack(t, dbURL, seed)
	syncProc := run("sync", append([]string{"sync", "--metrics-addr", freeAddr(t)}, remote...)...)
	var procs []*testutil.Process
	for i := range 2 {
		addr := freeAddr(t)
		procs = append(procs, run(fmt.Sprintf("serve-%d", i), s.serveArgs(addr, jwksFile, append(slices.Clone(remote), serveFlags...)...)...))
		s.baseURLs = append(s.baseURLs, "http://"+addr)
	}
	t.Cleanup(s.checkIndexAgreed)
	s.waitReady(func() error {
		for _, p := range append(procs, syncProc) {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %s", p, p.Output())
			default:
			}
		}
		return nil
	})
	return s
}

// migrateSpiceDB writes tenantgate's schema to sdb in-process, the step a
// deployment runs before serve and sync, which only wait for it.
func migrateSpiceDB(t *testing.T, sdb *testutil.SpiceDB) {
	t.Helper()
	cfg := app.Default()
	cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = sdb.Endpoint(), sdb.Token(), true
	if err := app.Migrate(t.Context(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil))); err != nil {
		t.Fatalf("migrate SpiceDB: %v", err)
	}
}

func dropSlots(t *testing.T, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testutil.DropReplicationSlots(ctx, dbURL); err != nil {
		t.Error(err)
	}
}

// testWriter sends logs to the test log, so they show only for failures.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// waitReady polls every replica's /readyz; alive reports a component that
// died meanwhile.
func (s *stack) waitReady(alive func() error) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, base := range s.baseURLs {
		for {
			if err := alive(); err != nil {
				s.t.Fatalf("not ready: %v", err)
			}
			resp, err := s.client.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("%s not ready within 2 minutes", base)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// baseURL picks the next replica.
func (s *stack) baseURL() string {
	s.next = (s.next + 1) % len(s.baseURLs)
	return s.baseURLs[s.next]
}

func (s *stack) exec(sql string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.db.Exec(ctx, sql, args...); err != nil {
		s.t.Fatalf("exec %q: %v", sql, err)
	}
}

func (s *stack) token(user string) string {
	s.t.Helper()
	tok, err := s.issuer.Mint(user, time.Hour, nil)
	if err != nil {
		s.t.Fatalf("mint: %v", err)
	}
	return tok
}

// do sends a request with bearer and decodes a JSON answer into out (when
// not nil), returning the status.
func (s *stack) do(method, path, bearer string, body, out any) int {
	s.t.Helper()
	code, err := s.call(method, path, bearer, body, out)
	if err != nil {
		s.t.Fatal(err)
	}
	return code
}

// call is do for any goroutine: it reports failures instead of ending the
// test.
func (s *stack) call(method, path, bearer string, body, out any) (int, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	a, err := s.send(method, path, bearer, raw, nil)
	if err != nil {
		return 0, err
	}
	if out != nil && len(a.body) > 0 {
		if err := json.Unmarshal(a.body, out); err != nil {
			return 0, fmt.Errorf("%s %s: decode %q: %w", method, path, a.body, err)
		}
	}
	return a.status, nil
}

// answer is a whole HTTP response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// send is a request with a raw JSON body (nil: none) that returns the whole
// response. It reports failures instead of ending the test, so goroutines
// may use it.
func (s *stack) send(method, path, bearer string, body []byte, header http.Header) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	s.mu.Lock()
	base := s.baseURL()
	s.mu.Unlock()
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return answer{}, err
	}
	maps.Copy(req.Header, header)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

type checkAnswer struct {
	Allowed          bool   `json:"allowed"`
	ConsistencyToken string `json:"consistency_token"`
}

func (s *stack) check(user, perm, company string) bool {
	s.t.Helper()
	var ans checkAnswer
	if code := s.do("POST", "/v1/check", s.token(user), map[string]string{"permission": perm, "company": company}, &ans); code != http.StatusOK {
		s.t.Fatalf("check %s %s %s: status %d", user, perm, company, code)
	}
	return ans.Allowed
}

type companyPage struct {
	Companies []struct {
		ID       string  `json:"id"`
		Name     string  `json:"name"`
		ParentID *string `json:"parent_id"`
	} `json:"companies"`
	NextCursor string `json:"next_cursor"`
}

// companies lists every company user holds perm on, following cursors.
func (s *stack) companies(user, perm string, pageSize int) []string {
	s.t.Helper()
	return s.listAllPages(s.t, s.token(user), perm, pageSize)
}

// listAllPages follows next_cursor through GET /v1/companies as bearer,
// checking every page's size and order.
func (s *stack) listAllPages(t *testing.T, bearer, perm string, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		q := url.Values{"permission": {perm}, "limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page companyPage
		if code := s.do("GET", "/v1/companies?"+q.Encode(), bearer, nil, &page); code != http.StatusOK {
			t.Fatalf("list %s: status %d", perm, code)
		}
		if len(page.Companies) > limit {
			t.Errorf("page of %d companies, limit %d", len(page.Companies), limit)
		}
		for _, c := range page.Companies {
			if c.Name == "" {
				t.Errorf("company %s listed without its name", c.ID)
			}
			ids = append(ids, c.ID)
		}
		if page.NextCursor == "" {
			return ids
		}
		cursor = page.NextCursor
	}
	t.Fatal("company listing does not end")
	return nil
}

var errNotYet = errors.New("not yet")
