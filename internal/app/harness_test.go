package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

const serviceToken = "test-service-token-0123456789"

// stack is a running `tenantgate serve` (embedded SpiceDB, in-process sync)
// over a fresh migrated database, with a token issuer it trusts.
type stack struct {
	t       *testing.T
	baseURL string
	db      *pgxpool.Pool
	issuer  *testutil.TokenIssuer
	client  *http.Client
}

// startStack runs seed (plain SQL, as the application would write it)
// before the gateway starts, so those rows arrive through the snapshot and
// everything later through the stream.
func startStack(t *testing.T, seed ...string) *stack {
	t.Helper()
	dbURL := testutil.NewTestDatabase(t)
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
	issuer, err := testutil.NewTokenIssuer("https://issuer.test", "tenantgate-test")
	if err != nil {
		t.Fatalf("token issuer: %v", err)
	}
	jwks, err := issuer.JWKS()
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = issuer.Issuer(), issuer.Audience()
	cfg.ServiceToken = serviceToken
	cfg.Listener = ln

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- app.Serve(ctx, cfg, logger) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("serve did not stop within a minute")
		}
	})

	s := &stack{t: t, baseURL: "http://" + ln.Addr().String(), db: pool, issuer: issuer, client: &http.Client{Timeout: 30 * time.Second}}
	s.waitReady(done)
	return s
}

// testWriter sends logs to the test log, so they show only for failures.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func (s *stack) waitReady(done <-chan error) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			s.t.Fatalf("serve exited before ready: %v", err)
		default:
		}
		resp, err := s.client.Get(s.baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatal("gateway not ready within 2 minutes")
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
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.baseURL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
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
	var ids []string
	cursor := ""
	for range 1000 {
		q := url.Values{"permission": {perm}, "limit": {fmt.Sprint(pageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page companyPage
		if code := s.do("GET", "/v1/companies?"+q.Encode(), s.token(user), nil, &page); code != http.StatusOK {
			s.t.Fatalf("list companies for %s: status %d", user, code)
		}
		for _, c := range page.Companies {
			ids = append(ids, c.ID)
		}
		if page.NextCursor == "" {
			return ids
		}
		cursor = page.NextCursor
	}
	s.t.Fatal("company listing does not end")
	return nil
}

var errNotYet = errors.New("not yet")

// eventually polls cond until it returns nil, failing the test with the
// last error after timeout. The sync applies changes asynchronously; the
// bound says how late is too late.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
