package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

const (
	aliceToken   = "alice-token"
	supportToken = "support-token" // sam, in groups sales and support
	serviceToken = "service-token-0123456789"
)

// fakeAuthn knows one user token; "down" stands for an unreachable JWKS.
type fakeAuthn struct {
	calls atomic.Int32
}

func (f *fakeAuthn) Authenticate(_ context.Context, raw string) (authz.Principal, error) {
	f.calls.Add(1)
	switch raw {
	case aliceToken:
		return authz.Principal{Subject: "alice"}, nil
	case "wildcard-token":
		return authz.Principal{Subject: authz.WildcardUser}, nil
	case supportToken:
		return authz.Principal{Subject: "sam", Groups: []string{"sales", "support"}}, nil
	case "down":
		return authz.Principal{}, fmt.Errorf("fetch jwks: %w", authz.ErrUnavailable)
	}
	return authz.Principal{}, fmt.Errorf("%w: signature invalid", authz.ErrUnauthenticated)
}

type lookupPage struct {
	ids  []string
	next string
}

type lookupCall struct {
	user   string
	perm   authz.Permission
	cons   authz.Consistency
	limit  int
	cursor string
}

// fakeAuthz allows exactly the requests in allow and records what it was
// asked. err, panics and shortBulk make it misbehave.
type fakeAuthz struct {
	mu        sync.Mutex
	allow     map[authz.CheckRequest]bool
	pages     map[string]lookupPage // by backend cursor
	err       error
	panics    bool
	shortBulk bool

	checks      []authz.CheckRequest
	consistency []authz.Consistency
	lookups     []lookupCall
	deadlines   []time.Duration
}

func (f *fakeAuthz) record(ctx context.Context, c authz.Consistency, reqs ...authz.CheckRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, reqs...)
	f.consistency = append(f.consistency, c)
	if d, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, time.Until(d))
	}
}

func (f *fakeAuthz) Check(ctx context.Context, req authz.CheckRequest, c authz.Consistency) (bool, string, error) {
	f.record(ctx, c, req)
	if f.panics {
		panic("authorizer exploded")
	}
	if f.err != nil {
		// A broken backend may well claim "allowed" next to its error.
		return true, "zed-err", f.err
	}
	return f.allow[req], "zed-1", nil
}

func (f *fakeAuthz) CheckBulk(ctx context.Context, reqs []authz.CheckRequest, c authz.Consistency) ([]bool, string, error) {
	f.record(ctx, c, reqs...)
	if f.panics {
		panic("authorizer exploded")
	}
	out := make([]bool, len(reqs))
	for i, r := range reqs {
		out[i] = f.allow[r]
	}
	if f.err != nil {
		for i := range out {
			out[i] = true
		}
		return out, "zed-err", f.err
	}
	if f.shortBulk {
		// Claims everything is allowed but answers one item too few.
		for i := range out {
			out[i] = true
		}
		return out[:len(out)-1], "zed-1", nil
	}
	return out, "zed-1", nil
}

func (f *fakeAuthz) LookupCompanies(ctx context.Context, user string, p authz.Permission, c authz.Consistency, limit int, cursor string) ([]string, string, error) {
	f.mu.Lock()
	f.lookups = append(f.lookups, lookupCall{user: user, perm: p, cons: c, limit: limit, cursor: cursor})
	f.mu.Unlock()
	if f.err != nil {
		return nil, "", f.err
	}
	page := f.pages[cursor]
	return page.ids, page.next, nil
}

func (f *fakeAuthz) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.checks) + len(f.lookups)
}

// fakeCompanies is the Postgres side. extra is returned on every call
// whether asked for or not, as a buggy reader might.
type fakeCompanies struct {
	byID  map[string]authz.Company
	extra *authz.Company
	err   error
}

// CompaniesAfter pages through byID in ID order.
func (f *fakeCompanies) CompaniesAfter(_ context.Context, after string, limit int) ([]authz.Company, error) {
	if f.err != nil {
		return nil, f.err
	}
	ids := slices.Sorted(maps.Keys(f.byID))
	var out []authz.Company
	for _, id := range ids {
		if id > after && len(out) < limit {
			out = append(out, f.byID[id])
		}
	}
	return out, nil
}

func (f *fakeCompanies) CompaniesByIDs(_ context.Context, ids []string) ([]authz.Company, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []authz.Company
	for _, id := range ids {
		if c, ok := f.byID[id]; ok {
			out = append(out, c)
		}
	}
	if f.extra != nil {
		out = append(out, *f.extra)
	}
	return out, nil
}

type env struct {
	t         *testing.T
	gw        *gateway.Gateway
	authn     *fakeAuthn
	authz     *fakeAuthz
	companies *fakeCompanies
	// manager and users serve the management routes, which exist only
	// when a setup sets them.
	manager gateway.Manager
	users   gateway.UserLookup
	// routes serve /v1/forward-auth when a setup sets them.
	routes gateway.ForwardRoutes
	// console serves /console/ when a setup sets it.
	console http.Handler
	ready   atomic.Bool
	logs    *testutil.SyncBuffer
}

// newEnv builds a gateway over fresh fakes.
func newEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	return buildEnv(t, cfg, nil, nil)
}

// buildEnv builds a gateway over fresh fakes, with fresh as its Waits
// (nil: none); setup, when set, adjusts the fakes before the gateway is
// built.
func buildEnv(t *testing.T, cfg gateway.Config, fresh gateway.AppliedWaiter, setup func(*env)) *env {
	t.Helper()
	e := &env{
		t:         t,
		authn:     &fakeAuthn{},
		authz:     &fakeAuthz{allow: map[authz.CheckRequest]bool{}, pages: map[string]lookupPage{}},
		companies: &fakeCompanies{byID: map[string]authz.Company{}},
		logs:      &testutil.SyncBuffer{},
	}
	e.ready.Store(true)
	if setup != nil {
		setup(e)
	}
	gw, err := gateway.New(cfg, gateway.Deps{
		Authn:     e.authn,
		Authz:     e.authz,
		Companies: e.companies,
		All:       e.companies,
		Waits:     fresh,
		Manager:   e.manager,
		Users:     e.users,
		Routes:    e.routes,
		Console:   e.console,
		Ready:     e.ready.Load,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:  prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.gw = gw
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway logs:\n%s", e.logs.String())
		}
	})
	return e
}

type reqOpt func(*http.Request)

// as replaces the default bearer token (alice's); "" sends none.
func as(token string) reqOpt {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
	}
}

func header(name, value string) reqOpt {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

// do sends a request as alice, with a JSON Content-Type when there is a
// body, and checks that any error answer is a well-formed problem document.
func (e *env) do(method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+aliceToken)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(r)
	}
	rec := httptest.NewRecorder()
	e.gw.Handler().ServeHTTP(rec, r)
	if rec.Code >= 400 {
		assertProblem(e.t, rec.Code, rec.Header(), rec.Body.Bytes())
	}
	return rec
}

// assertProblem checks the RFC 9457 shape every error answer must have.
func assertProblem(t *testing.T, code int, h http.Header, body []byte) {
	t.Helper()
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "application/problem+json" {
		t.Errorf("status %d: Content-Type = %q, want application/problem+json", code, h.Get("Content-Type"))
	}
	var p struct {
		Type      string `json:"type"`
		Title     string `json:"title"`
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("status %d: problem body %q is not JSON: %v", code, body, err)
	}
	if p.Status != code || p.Type == "" || p.Title == "" {
		t.Errorf("problem %s does not match status %d", body, code)
	}
	if p.RequestID == "" || p.RequestID != h.Get("X-Request-Id") {
		t.Errorf("problem request_id %q, X-Request-Id header %q", p.RequestID, h.Get("X-Request-Id"))
	}
	if bytes.Contains(body, []byte(`"allowed":true`)) || bytes.Contains(body, []byte(`"decision":true`)) {
		t.Errorf("error answer contains an allow: %s", body)
	}
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return v
}

func problemDetail(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	return decode[struct {
		Detail string `json:"detail"`
	}](t, rec).Detail
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, want, rec.Body.String())
	}
}
