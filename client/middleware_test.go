package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/client"
)

// reportsApp is an application behind Require: its handler answers with
// the decision it was handed.
func reportsApp(c *client.Client) http.Handler {
	fromPath := func(r *http.Request) (string, error) { return r.PathValue("company"), nil }
	fromHeader := func(r *http.Request) (string, error) {
		if id := r.Header.Get("X-Tenant"); id != "" {
			return id, nil
		}
		return "", errors.New("X-Tenant names no company")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /companies/{company}/reports", c.Require(client.PermRead, fromPath)(http.HandlerFunc(showDecision)))
	mux.Handle("POST /companies/{company}/members", c.Require(client.PermManageMembers, fromPath)(http.HandlerFunc(showDecision)))
	mux.Handle("GET /tenant/reports", c.Require(client.PermRead, fromHeader)(http.HandlerFunc(showDecision)))
	return mux
}

func showDecision(w http.ResponseWriter, r *http.Request) {
	d, ok := client.DecisionFrom(r.Context())
	if !ok {
		http.Error(w, "no decision in the context", http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(d)
}

// problem is a problem document as a test reads it.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
}

// serve sends one request through h with bearer (empty: no Authorization).
func serve(t *testing.T, h http.Handler, method, target, bearer string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// problemOf checks that rec is a problem document of status.
func problemOf(t *testing.T, rec *httptest.ResponseRecorder, status int) problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type != "about:blank" {
		t.Errorf("problem %+v, want status %d", p, status)
	}
	return p
}

func TestRequire(t *testing.T) {
	t.Parallel()
	g := startGateway(t, treeSeed)
	app := reportsApp(g.client(t))
	carol, bob := g.token(t, "carol"), g.token(t, "bob")

	t.Run("allowed", func(t *testing.T) {
		for _, tc := range []struct {
			method, target, bearer string
			header                 http.Header
			company                string
			perm                   client.Permission
		}{
			{"GET", "/companies/paris/reports", carol, nil, "paris", client.PermRead},
			{"POST", "/companies/paris/members", bob, nil, "paris", client.PermManageMembers},
			{"GET", "/companies/z%C3%BCrich%2Fsub/reports", carol, nil, "zürich/sub", client.PermRead},
			{"GET", "/tenant/reports", carol, http.Header{"X-Tenant": {"europe"}}, "europe", client.PermRead},
		} {
			t.Run(tc.target, func(t *testing.T) {
				rec := serve(t, app, tc.method, tc.target, tc.bearer, tc.header)
				if rec.Code != http.StatusOK {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				var d client.Decision
				if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
					t.Fatal(err)
				}
				if !d.Allowed || d.Company != tc.company || d.Permission != tc.perm || d.ConsistencyToken == "" {
					t.Errorf("decision in the context: %+v", d)
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, target, authorization string
			header                              http.Header
			status                              int
			detail                              string
		}{
			{"no token", "GET", "/companies/paris/reports", "", nil, http.StatusUnauthorized, "missing bearer token"},
			{"not a bearer", "GET", "/companies/paris/reports", "Basic Y2Fyb2w6cHc=", nil, http.StatusUnauthorized, "Bearer <token>"},
			{"empty bearer", "GET", "/companies/paris/reports", "Bearer ", nil, http.StatusUnauthorized, "Bearer <token>"},
			{"untrusted token", "GET", "/companies/paris/reports", "Bearer not-a-jwt", nil, http.StatusUnauthorized, ""},
			{"denied", "GET", "/companies/globex/reports", "Bearer " + carol, nil, http.StatusForbidden, "this needs read on the company"},
			{"denied another permission", "POST", "/companies/paris/members", "Bearer " + carol, nil, http.StatusForbidden, "manage_members"},
			{"unknown company", "GET", "/companies/nowhere/reports", "Bearer " + carol, nil, http.StatusForbidden, ""},
			{"no company", "GET", "/tenant/reports", "Bearer " + carol, nil, http.StatusBadRequest, "X-Tenant names no company"},
			{"invalid company", "GET", "/companies/bad%01id/reports", "Bearer " + carol, nil, http.StatusBadRequest, "company id"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				header := tc.header.Clone()
				if header == nil {
					header = http.Header{}
				}
				if tc.authorization != "" {
					header.Set("Authorization", tc.authorization)
				}
				rec := serve(t, app, tc.method, tc.target, "", header)
				p := problemOf(t, rec, tc.status)
				if !strings.Contains(p.Detail, tc.detail) {
					t.Errorf("detail %q, want it to hold %q", p.Detail, tc.detail)
				}
				if tc.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
	})

	t.Run("fails closed", func(t *testing.T) {
		hanging := hangingServer(t)
		unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "7")
			w.Header().Set("X-Request-Id", "req-7")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"request_id":"req-7"}`))
		}))
		t.Cleanup(unavailable.Close)
		for _, tc := range []struct {
			name       string
			url        string
			opts       []client.Option
			retryAfter string
			requestID  string
		}{
			{"unreachable", closedURL(t), nil, "1", ""},
			{"timeout", hanging.URL, []client.Option{client.WithTimeout(100 * time.Millisecond)}, "1", ""},
			{"gateway 503", unavailable.URL, nil, "7", "req-7"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var logs bytes.Buffer
				c, err := client.New(tc.url, append(tc.opts, client.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))...)
				if err != nil {
					t.Fatal(err)
				}
				rec := serve(t, reportsApp(c), "GET", "/companies/paris/reports", carol, nil)
				p := problemOf(t, rec, http.StatusServiceUnavailable)
				if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
					t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
				}
				if p.RequestID != tc.requestID || p.Detail != "" {
					t.Errorf("problem %+v: the cause is for the log, the gateway's request id for the caller", p)
				}
				if !strings.Contains(logs.String(), "answered 503") {
					t.Errorf("the cause was not logged: %q", logs.String())
				}
			})
		}
	})

	t.Run("a service client checks as the request's user", func(t *testing.T) {
		rec := serve(t, reportsApp(g.service(t)), "GET", "/companies/globex/reports", carol, nil)
		problemOf(t, rec, http.StatusForbidden)
	})
}

func TestDecisionFrom(t *testing.T) {
	t.Parallel()
	if d, ok := client.DecisionFrom(context.Background()); ok || d.Allowed {
		t.Errorf("a context without a decision gave %+v", d)
	}
	want := client.Decision{Allowed: true, Company: "acme", Permission: client.PermRead, ConsistencyToken: "t"}
	if got, ok := client.DecisionFrom(client.ContextWithDecision(context.Background(), want)); !ok || got != want {
		t.Errorf("got %+v, %v", got, ok)
	}
}

func TestRequireRefusesMistakes(t *testing.T) {
	t.Parallel()
	c, err := client.New("http://localhost:1")
	if err != nil {
		t.Fatal(err)
	}
	for name, build := range map[string]func(){
		"unknown permission": func() { c.Require("fly", func(*http.Request) (string, error) { return "a", nil }) },
		"nil company":        func() { c.Require(client.PermRead, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			build()
		})
	}
}
