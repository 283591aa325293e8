package gateway_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

func req(user string, p authz.Permission, company string) authz.CheckRequest {
	return authz.CheckRequest{User: user, Permission: p, Company: company}
}

func TestRoutesAnswerTheContractShapes(t *testing.T) {
	type company struct {
		ID       string  `json:"id"`
		Name     string  `json:"name"`
		ParentID *string `json:"parent_id"`
	}
	tests := []struct {
		name        string
		method      string
		target      string
		body        string
		contentType string
		check       func(t *testing.T, e *env, rec *httptest.ResponseRecorder)
	}{
		{
			name: "check", method: "POST", target: "/v1/check",
			body:        `{"permission":"read","company":"acme"}`,
			contentType: "application/json",
			check: func(t *testing.T, e *env, rec *httptest.ResponseRecorder) {
				got := decode[map[string]any](t, rec)
				if got["allowed"] != true || got["consistency_token"] != "zed-1" || len(got) != 2 {
					t.Errorf("body = %v", got)
				}
				if want := []authz.CheckRequest{req("alice", authz.PermRead, "acme")}; !slices.Equal(e.authz.checks, want) {
					t.Errorf("authorizer asked %v, want %v", e.authz.checks, want)
				}
			},
		},
		{
			name: "bulk check", method: "POST", target: "/v1/check/bulk",
			body:        `{"checks":[{"permission":"read","company":"acme"},{"permission":"delete","company":"acme"}]}`,
			contentType: "application/json",
			check: func(t *testing.T, _ *env, rec *httptest.ResponseRecorder) {
				got := decode[struct {
					Results []struct {
						Permission string `json:"permission"`
						Company    string `json:"company"`
						Allowed    *bool  `json:"allowed"`
					} `json:"results"`
					ConsistencyToken string `json:"consistency_token"`
				}](t, rec)
				if len(got.Results) != 2 || got.ConsistencyToken != "zed-1" {
					t.Fatalf("body = %s", rec.Body)
				}
				r0, r1 := got.Results[0], got.Results[1]
				if r0.Permission != "read" || r0.Company != "acme" || r0.Allowed == nil || !*r0.Allowed ||
					r1.Permission != "delete" || r1.Company != "acme" || r1.Allowed == nil || *r1.Allowed {
					t.Errorf("body = %s", rec.Body)
				}
			},
		},
		{
			name: "list companies", method: "GET", target: "/v1/companies",
			check: func(t *testing.T, e *env, rec *httptest.ResponseRecorder) {
				acme := "acme"
				want := []company{{ID: "acme", Name: "Acme"}, {ID: "sub", Name: "Acme Sub", ParentID: &acme}}
				got := decode[struct {
					Companies  []company `json:"companies"`
					NextCursor *string   `json:"next_cursor"`
				}](t, rec)
				if !slices.EqualFunc(got.Companies, want, func(a, b company) bool {
					return a.ID == b.ID && a.Name == b.Name && (a.ParentID == nil) == (b.ParentID == nil) && (a.ParentID == nil || *a.ParentID == *b.ParentID)
				}) || got.NextCursor != nil {
					t.Errorf("body = %s", rec.Body)
				}
				if !strings.Contains(rec.Body.String(), `"parent_id":null`) {
					t.Errorf("root company lacks parent_id null: %s", rec.Body)
				}
				if l := e.authz.lookups; len(l) != 1 || l[0].user != "alice" || l[0].perm != authz.PermRead || l[0].limit != 100 || l[0].cursor != "" {
					t.Errorf("lookups = %+v", l)
				}
			},
		},
		{
			name: "company permissions", method: "GET", target: "/v1/companies/acme/permissions",
			check: func(t *testing.T, e *env, rec *httptest.ResponseRecorder) {
				got := decode[struct {
					Company     string          `json:"company"`
					Permissions map[string]bool `json:"permissions"`
				}](t, rec)
				want := map[string]bool{"read": true, "update": false, "create": false, "delete": false, "manage_members": false, "manage_owners": false}
				if got.Company != "acme" || len(got.Permissions) != len(want) {
					t.Fatalf("body = %s", rec.Body)
				}
				for p, v := range want {
					if got.Permissions[p] != v {
						t.Errorf("permissions[%s] = %v, want %v", p, got.Permissions[p], v)
					}
				}
				if len(e.authz.consistency) != 1 {
					t.Errorf("%d authorizer calls, want one bulk check", len(e.authz.consistency))
				}
			},
		},
		{
			name: "healthz", method: "GET", target: "/healthz",
			check: func(t *testing.T, _ *env, rec *httptest.ResponseRecorder) {
				if got := decode[map[string]string](t, rec); got["status"] != "ok" {
					t.Errorf("body = %s", rec.Body)
				}
			},
		},
		{
			name: "readyz", method: "GET", target: "/readyz",
			check: func(t *testing.T, _ *env, rec *httptest.ResponseRecorder) {
				if got := decode[map[string]string](t, rec); got["status"] != "ok" {
					t.Errorf("body = %s", rec.Body)
				}
			},
		},
		{
			name: "openapi", method: "GET", target: "/openapi.yaml",
			check: func(t *testing.T, _ *env, rec *httptest.ResponseRecorder) {
				if !strings.HasPrefix(rec.Body.String(), "openapi: 3.1") || rec.Header().Get("Content-Type") != "application/yaml" {
					t.Errorf("Content-Type %q, body starts %.20q", rec.Header().Get("Content-Type"), rec.Body)
				}
			},
		},
		{
			name: "metrics", method: "GET", target: "/metrics",
			check: func(t *testing.T, _ *env, rec *httptest.ResponseRecorder) {
				if !strings.Contains(rec.Body.String(), "tenantgate_check_decisions_total") {
					t.Errorf("metrics lack decisions: %s", rec.Body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			e.authz.allow[req("alice", authz.PermRead, "acme")] = true
			e.authz.pages[""] = lookupPage{ids: []string{"acme", "sub"}}
			e.companies.byID["acme"] = authz.Company{ID: "acme", Name: "Acme"}
			e.companies.byID["sub"] = authz.Company{ID: "sub", Name: "Acme Sub", ParentID: "acme"}
			rec := e.do(tt.method, tt.target, tt.body)
			wantStatus(t, rec, http.StatusOK)
			if tt.contentType != "" && rec.Header().Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type = %q", rec.Header().Get("Content-Type"))
			}
			tt.check(t, e, rec)
		})
	}
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name          string
		authorization []string
		want          int
		wantAuthnCall bool
	}{
		{name: "missing", want: http.StatusUnauthorized},
		{name: "basic scheme", authorization: []string{"Basic YWxpY2U6cHc="}, want: http.StatusUnauthorized},
		{name: "bearer without token", authorization: []string{"Bearer"}, want: http.StatusUnauthorized},
		{name: "bearer with empty token", authorization: []string{"Bearer "}, want: http.StatusUnauthorized},
		{name: "token with space", authorization: []string{"Bearer alice-token extra"}, want: http.StatusUnauthorized},
		{name: "two headers", authorization: []string{"Bearer alice-token", "Bearer alice-token"}, want: http.StatusUnauthorized},
		{name: "rejected token", authorization: []string{"Bearer forged"}, want: http.StatusUnauthorized, wantAuthnCall: true},
		{name: "wildcard subject", authorization: []string{"Bearer wildcard-token"}, want: http.StatusUnauthorized, wantAuthnCall: true},
		{name: "authenticator unavailable", authorization: []string{"Bearer down"}, want: http.StatusServiceUnavailable, wantAuthnCall: true},
		{name: "scheme is case-insensitive", authorization: []string{"bearer alice-token"}, want: http.StatusOK, wantAuthnCall: true},
	}
	routes := []struct{ method, target, body string }{
		{"POST", "/v1/check", `{"permission":"read","company":"acme"}`},
		{"POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"acme"}]}`},
		{"GET", "/v1/companies", ""},
		{"GET", "/v1/companies/acme/permissions", ""},
	}
	for _, tt := range tests {
		for _, rt := range routes {
			t.Run(tt.name+"/"+rt.method+" "+rt.target, func(t *testing.T) {
				e := newEnv(t, gateway.Config{})
				rec := e.do(rt.method, rt.target, rt.body, func(r *http.Request) {
					r.Header["Authorization"] = tt.authorization
				})
				wantStatus(t, rec, tt.want)
				if tt.want == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
				}
				if got := e.authn.calls.Load() > 0; got != tt.wantAuthnCall {
					t.Errorf("authenticator called = %v, want %v", got, tt.wantAuthnCall)
				}
				if tt.want != http.StatusOK && e.authz.calls() != 0 {
					t.Errorf("authorizer asked for an unauthenticated caller")
				}
			})
		}
	}
}

func TestServiceToken(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		method     string
		target     string
		body       string
		want       int
		wantDetail string
		wantUser   string
	}{
		{name: "check with subject", token: serviceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":"bob@example.com"}`, want: 200, wantUser: "bob@example.com"},
		{name: "bulk with subject", token: serviceToken, method: "POST", target: "/v1/check/bulk",
			body: `{"checks":[{"permission":"read","company":"acme"}],"subject":"bob"}`, want: 200, wantUser: "bob"},
		{name: "check without subject", token: serviceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme"}`, want: 400, wantDetail: "subject is required"},
		{name: "bulk without subject", token: serviceToken, method: "POST", target: "/v1/check/bulk",
			body: `{"checks":[{"permission":"read","company":"acme"}]}`, want: 400, wantDetail: "subject is required"},
		{name: "empty subject", token: serviceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":""}`, want: 400, wantDetail: "empty"},
		{name: "wildcard subject", token: serviceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":"*"}`, want: 400, wantDetail: "not a user"},
		{name: "list companies", token: serviceToken, method: "GET", target: "/v1/companies", want: 403, wantDetail: "service token"},
		{name: "company permissions", token: serviceToken, method: "GET", target: "/v1/companies/acme/permissions", want: 403, wantDetail: "service token"},
		{name: "user sends subject", token: aliceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":"bob"}`, want: 403, wantDetail: "subject may only be set by a trusted service"},
		{name: "user sends own subject", token: aliceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":"alice"}`, want: 403, wantDetail: "trusted service"},
		{name: "user sends empty subject", token: aliceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":""}`, want: 403, wantDetail: "trusted service"},
		{name: "user sends subject in bulk", token: aliceToken, method: "POST", target: "/v1/check/bulk",
			body: `{"checks":[{"permission":"read","company":"acme"}],"subject":"bob"}`, want: 403, wantDetail: "trusted service"},
		{name: "user sends null subject", token: aliceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":null}`, want: 403, wantDetail: "trusted service"},
		{name: "user sends null subject in bulk", token: aliceToken, method: "POST", target: "/v1/check/bulk",
			body: `{"checks":[{"permission":"read","company":"acme"}],"subject":null}`, want: 403, wantDetail: "trusted service"},
		{name: "null subject", token: serviceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":null}`, want: 400, wantDetail: "subject must be a string"},
		{name: "null subject in bulk", token: serviceToken, method: "POST", target: "/v1/check/bulk",
			body: `{"checks":[{"permission":"read","company":"acme"}],"subject":null}`, want: 400, wantDetail: "subject must be a string"},
		{name: "number subject", token: serviceToken, method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":7}`, want: 400, wantDetail: "subject must be a string"},
		{name: "prefix of the service token", token: serviceToken[:len(serviceToken)-1], method: "POST", target: "/v1/check",
			body: `{"permission":"read","company":"acme","subject":"bob"}`, want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{ServiceToken: serviceToken})
			rec := e.do(tt.method, tt.target, tt.body, as(tt.token))
			wantStatus(t, rec, tt.want)
			if tt.wantDetail != "" && !strings.Contains(problemDetail(t, rec), tt.wantDetail) {
				t.Errorf("detail %q lacks %q", problemDetail(t, rec), tt.wantDetail)
			}
			if tt.token == serviceToken && e.authn.calls.Load() != 0 {
				t.Errorf("the service token was handed to the Authenticator")
			}
			if tt.want != http.StatusOK {
				if e.authz.calls() != 0 {
					t.Errorf("authorizer asked despite status %d", tt.want)
				}
				return
			}
			for _, c := range e.authz.checks {
				if c.User != tt.wantUser {
					t.Errorf("checked user %q, want %q", c.User, tt.wantUser)
				}
			}
		})
	}
}

func TestServiceTokenOnlyMatchesTheConfiguredOne(t *testing.T) {
	tests := []struct{ name, configured string }{
		{"none configured", ""},
		{"another configured", "another-service-token-xyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{ServiceToken: tt.configured})
			rec := e.do("POST", "/v1/check", `{"permission":"read","company":"acme","subject":"bob"}`, as(serviceToken))
			wantStatus(t, rec, http.StatusUnauthorized)
			if e.authn.calls.Load() != 1 {
				t.Errorf("authenticator calls = %d, want 1", e.authn.calls.Load())
			}
		})
	}
}

func cursorFor(p, backend string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"permission":%q,"cursor":%q}`, p, backend))
}

func TestBadInput(t *testing.T) {
	long := strings.Repeat("x", authz.MaxIDBytes+1)
	manyChecks := `{"checks":[` + strings.TrimSuffix(strings.Repeat(`{"permission":"read","company":"a"},`, 4), ",") + `]}`
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		opts       []reqOpt
		want       int
		wantDetail string
	}{
		{name: "unknown field", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme","extra":1}`, want: 400, wantDetail: `unknown field "extra"`},
		{name: "unknown field in bulk item", method: "POST", target: "/v1/check/bulk", body: `{"checks":[{"permission":"read","company":"a","user":"bob"}]}`, want: 400, wantDetail: "unknown field"},
		{name: "trailing object", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"}{}`, want: 400, wantDetail: "more than one JSON value"},
		{name: "trailing garbage", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"} x`, want: 400},
		{name: "trailing whitespace is fine", method: "POST", target: "/v1/check", body: "{\"permission\":\"read\",\"company\":\"acme\"}\n\t ", want: 200},
		{name: "empty body", method: "POST", target: "/v1/check", body: "", opts: []reqOpt{header("Content-Type", "application/json")}, want: 400, wantDetail: "empty"},
		{name: "truncated JSON", method: "POST", target: "/v1/check", body: `{"permission":"read"`, want: 400},
		{name: "syntax error", method: "POST", target: "/v1/check", body: `{"permission":read}`, want: 400, wantDetail: "malformed JSON"},
		{name: "array body", method: "POST", target: "/v1/check", body: `[]`, want: 400, wantDetail: "JSON object"},
		{name: "wrong field type", method: "POST", target: "/v1/check", body: `{"permission":1,"company":"acme"}`, want: 400, wantDetail: `"permission"`},
		{name: "missing permission", method: "POST", target: "/v1/check", body: `{"company":"acme"}`, want: 400, wantDetail: "permission is required"},
		{name: "unknown permission", method: "POST", target: "/v1/check", body: `{"permission":"fly","company":"acme"}`, want: 400, wantDetail: "unknown permission"},
		{name: "missing company", method: "POST", target: "/v1/check", body: `{"permission":"read"}`, want: 400, wantDetail: "company id"},
		{name: "oversized company", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"` + long + `"}`, want: 400, wantDetail: "longer than"},
		{name: "control character in company", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"a\u0001b"}`, want: 400, wantDetail: "control character"},
		{name: "null body", method: "POST", target: "/v1/check", body: `null`, want: 400, wantDetail: "required"},
		{name: "text/plain", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"}`, opts: []reqOpt{header("Content-Type", "text/plain")}, want: 415},
		{name: "no content type", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"}`, opts: []reqOpt{func(r *http.Request) { r.Header.Del("Content-Type") }}, want: 415},
		{name: "latin1 charset", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"}`, opts: []reqOpt{header("Content-Type", "application/json; charset=latin1")}, want: 415},
		{name: "utf-8 charset is fine", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"}`, opts: []reqOpt{header("Content-Type", "application/json; charset=UTF-8")}, want: 200},
		{name: "consistency token too long", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme","consistency_token":"` + strings.Repeat("z", 1025) + `"}`, want: 400, wantDetail: "consistency token"},
		{name: "consistency header too long", method: "GET", target: "/v1/companies", opts: []reqOpt{header("Consistency-Token", strings.Repeat("z", 1025))}, want: 400, wantDetail: "consistency token"},
		{name: "consistency header too long for permissions", method: "GET", target: "/v1/companies/acme/permissions", opts: []reqOpt{header("Consistency-Token", strings.Repeat("z", 1025))}, want: 400, wantDetail: "consistency token"},
		{name: "bulk consistency header and body differ", method: "POST", target: "/v1/check/bulk", body: `{"checks":[{"permission":"read","company":"a"}],"consistency_token":"a"}`, opts: []reqOpt{header("Consistency-Token", "b")}, want: 400, wantDetail: "differ"},
		{name: "consistency header and body differ", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme","consistency_token":"a"}`, opts: []reqOpt{header("Consistency-Token", "b")}, want: 400, wantDetail: "differ"},
		{name: "bulk without checks", method: "POST", target: "/v1/check/bulk", body: `{}`, want: 400, wantDetail: "1 to 3 items"},
		{name: "bulk empty", method: "POST", target: "/v1/check/bulk", body: `{"checks":[]}`, want: 400, wantDetail: "1 to 3 items"},
		{name: "bulk too many", method: "POST", target: "/v1/check/bulk", body: manyChecks, want: 400, wantDetail: "not 4"},
		{name: "bulk bad item", method: "POST", target: "/v1/check/bulk", body: `{"checks":[{"permission":"read","company":"a"},{"permission":"read","company":""}]}`, want: 400, wantDetail: "checks[1]"},
		{name: "limit zero", method: "GET", target: "/v1/companies?limit=0", want: 400, wantDetail: "limit"},
		{name: "limit negative", method: "GET", target: "/v1/companies?limit=-1", want: 400, wantDetail: "limit"},
		{name: "limit not a number", method: "GET", target: "/v1/companies?limit=ten", want: 400, wantDetail: "limit"},
		{name: "limit above max", method: "GET", target: "/v1/companies?limit=51", want: 400, wantDetail: "from 1 to 50"},
		{name: "limit repeated", method: "GET", target: "/v1/companies?limit=1&limit=2", want: 400, wantDetail: "more than once"},
		{name: "unknown query parameter", method: "GET", target: "/v1/companies?user=bob", want: 400, wantDetail: `"user"`},
		{name: "malformed query", method: "GET", target: "/v1/companies?limit=%zz", want: 400},
		{name: "unknown permission in query", method: "GET", target: "/v1/companies?permission=fly", want: 400, wantDetail: "unknown permission"},
		{name: "cursor not base64", method: "GET", target: "/v1/companies?cursor=%21%21%21", want: 400, wantDetail: "cursor"},
		{name: "cursor not JSON", method: "GET", target: "/v1/companies?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("c1")), want: 400, wantDetail: "cursor"},
		{name: "cursor without backend cursor", method: "GET", target: "/v1/companies?cursor=" + cursorFor("read", ""), want: 400, wantDetail: "cursor"},
		{name: "cursor too long", method: "GET", target: "/v1/companies?cursor=" + strings.Repeat("A", 4097), want: 400, wantDetail: "cursor"},
		{name: "cursor of another permission", method: "GET", target: "/v1/companies?permission=update&cursor=" + cursorFor("read", "c1"), want: 400, wantDetail: `permission "read"`},
		{name: "cursor of default permission used with another", method: "GET", target: "/v1/companies?permission=delete&cursor=" + cursorFor("read", "c1"), want: 400},
		{name: "control character in path id", method: "GET", target: "/v1/companies/a%01b/permissions", want: 400, wantDetail: "control character"},
		{name: "oversized path id", method: "GET", target: "/v1/companies/" + long + "/permissions", want: 400, wantDetail: "longer than"},
		{name: "invalid UTF-8 in path id", method: "GET", target: "/v1/companies/a%FFb/permissions", want: 400, wantDetail: "UTF-8"},
		{name: "body too large", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"` + strings.Repeat("x", 4096) + `"}`, want: 413, wantDetail: "2048 bytes"},
		{name: "bulk body too large", method: "POST", target: "/v1/check/bulk", body: `{"checks":[` + strings.Repeat(" ", 4096) + `]}`, want: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{MaxBodyBytes: 2048, MaxBulkChecks: 3, MaxPageSize: 50, DefaultPageSize: 10})
			rec := e.do(tt.method, tt.target, tt.body, tt.opts...)
			wantStatus(t, rec, tt.want)
			if tt.want == http.StatusOK {
				return
			}
			if d := problemDetail(t, rec); !strings.Contains(d, tt.wantDetail) {
				t.Errorf("detail %q lacks %q", d, tt.wantDetail)
			}
			if e.authz.calls() != 0 {
				t.Errorf("authorizer asked despite bad input")
			}
		})
	}
}

func TestUnroutedRequestsAreProblems(t *testing.T) {
	tests := []struct {
		method, target string
		want           int
		wantAllow      string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/v1/companies/", 404, ""},
		{"GET", "/v1/companies/acme", 404, ""},
		{"GET", "/v1/companies/acme/members", 404, ""},
		{"POST", "/v1/companies", 405, "GET, HEAD"},
		{"GET", "/v1/check", 405, "POST"},
		{"DELETE", "/v1/companies/acme/permissions", 405, "GET, HEAD"},
		{"POST", "/healthz", 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			rec := e.do(tt.method, tt.target, "")
			wantStatus(t, rec, tt.want)
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestFailsClosed(t *testing.T) {
	const secret = "dial tcp 10.0.0.7:50051: secret-internal-detail"
	unavailable := fmt.Errorf("spicedb: %w: %s", authz.ErrUnavailable, secret)
	unknown := errors.New(secret)
	checkBody := `{"permission":"read","company":"acme"}`
	bulkBody := `{"checks":[{"permission":"read","company":"acme"},{"permission":"update","company":"acme"}]}`
	tests := []struct {
		name           string
		method, target string
		body           string
		setup          func(*env)
		want           int
		wantErrorCount string
	}{
		{name: "check unavailable", method: "POST", target: "/v1/check", body: checkBody,
			setup: func(e *env) { e.authz.err = unavailable }, want: 503, wantErrorCount: "1"},
		{name: "check unknown error", method: "POST", target: "/v1/check", body: checkBody,
			setup: func(e *env) { e.authz.err = unknown }, want: 500, wantErrorCount: "1"},
		{name: "check panics", method: "POST", target: "/v1/check", body: checkBody,
			setup: func(e *env) { e.authz.panics = true }, want: 500, wantErrorCount: "0"},
		{name: "bulk unavailable", method: "POST", target: "/v1/check/bulk", body: bulkBody,
			setup: func(e *env) { e.authz.err = unavailable }, want: 503, wantErrorCount: "2"},
		{name: "bulk answers too few", method: "POST", target: "/v1/check/bulk", body: bulkBody,
			setup: func(e *env) { e.authz.shortBulk = true }, want: 500, wantErrorCount: "2"},
		{name: "bulk panics", method: "POST", target: "/v1/check/bulk", body: bulkBody,
			setup: func(e *env) { e.authz.panics = true }, want: 500, wantErrorCount: "0"},
		{name: "permissions unavailable", method: "GET", target: "/v1/companies/acme/permissions",
			setup: func(e *env) { e.authz.err = unavailable }, want: 503, wantErrorCount: "6"},
		{name: "permissions answered too few", method: "GET", target: "/v1/companies/acme/permissions",
			setup: func(e *env) { e.authz.shortBulk = true }, want: 500, wantErrorCount: "6"},
		{name: "lookup unavailable", method: "GET", target: "/v1/companies",
			setup: func(e *env) { e.authz.err = unavailable }, want: 503, wantErrorCount: "0"},
		{name: "company reader fails", method: "GET", target: "/v1/companies",
			setup: func(e *env) {
				e.authz.pages[""] = lookupPage{ids: []string{"acme"}}
				e.companies.err = unknown
			}, want: 500, wantErrorCount: "0"},
		{name: "authorizer rejects input", method: "POST", target: "/v1/check", body: checkBody,
			setup: func(e *env) { e.authz.err = fmt.Errorf("%w: malformed consistency token", authz.ErrInvalid) }, want: 400, wantErrorCount: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			e.authz.allow[req("alice", authz.PermRead, "acme")] = true
			tt.setup(e)
			rec := e.do(tt.method, tt.target, tt.body)
			wantStatus(t, rec, tt.want)
			if strings.Contains(rec.Body.String(), "true") {
				t.Errorf("failed answer mentions true: %s", rec.Body)
			}
			if strings.Contains(rec.Body.String(), "secret-internal-detail") || strings.Contains(rec.Body.String(), "exploded") {
				t.Errorf("internal detail leaked: %s", rec.Body)
			}
			if want := map[int]string{http.StatusServiceUnavailable: "1"}[tt.want]; rec.Header().Get("Retry-After") != want {
				t.Errorf("Retry-After = %q, want %q", rec.Header().Get("Retry-After"), want)
			}
			if tt.want >= 500 && !strings.Contains(e.logs.String(), "level=ERROR") {
				t.Errorf("cause not logged: %s", e.logs)
			}
			if e.authz.panics && !strings.Contains(e.logs.String(), "goroutine") {
				t.Errorf("panic logged without stack: %s", e.logs)
			}
			metrics := e.do("GET", "/metrics", "").Body.String()
			if got := strconv.Itoa(decisions(t, metrics, "error")); got != tt.wantErrorCount {
				t.Errorf("%s checks counted as errors, want %s", got, tt.wantErrorCount)
			}
			if decisions(t, metrics, "allowed") != 0 {
				t.Errorf("a failed check was counted as allowed")
			}
		})
	}
}

// decisionLine is a series of tenantgate_check_decisions_total in the
// text exposition format, which sorts labels by name.
var decisionLine = regexp.MustCompile(`(?m)^tenantgate_check_decisions_total\{decision="([a-z]+)",permission="[a-z_]+"\} ([0-9]+)$`)

// decisions sums the checks metrics counts with decision, whatever their
// permission.
func decisions(t *testing.T, metrics, decision string) int {
	t.Helper()
	matches := decisionLine.FindAllStringSubmatch(metrics, -1)
	if len(matches) == 0 {
		t.Fatalf("no tenantgate_check_decisions_total series in:\n%s", metrics)
	}
	total := 0
	for _, m := range matches {
		if m[1] == decision {
			n, _ := strconv.Atoi(m[2])
			total += n
		}
	}
	return total
}

func TestPathIDsReachTheAuthorizerUnescaped(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	// A real server and client, so that nothing on the way normalises the
	// escaped path differently from production.
	srv := httptest.NewServer(e.gw.Handler())
	t.Cleanup(srv.Close)
	tests := []struct{ path, want string }{
		{"a.b%40c", "a.b@c"},
		{"%C3%A9cole", "école"},
		{"école", "école"},
		{"a%2Fb", "a/b"},
		{"a%20b", "a b"},
		{"%2E%2E", ".."},
		{"100%25", "100%"},
		{"%E2%98%95%3A%2A", "☕:*"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/companies/"+tt.path+"/permissions", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", "Bearer "+aliceToken)
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			e.authz.mu.Lock()
			last := e.authz.checks[len(e.authz.checks)-1]
			e.authz.mu.Unlock()
			if last.Company != tt.want {
				t.Errorf("authorizer got company %q, want %q", last.Company, tt.want)
			}
			if !strings.Contains(string(body), fmt.Sprintf(`"company":%q`, tt.want)) {
				t.Errorf("body %s does not name %q", body, tt.want)
			}
		})
	}
}

func TestCompanyPagination(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	e.authz.pages[""] = lookupPage{ids: []string{"a", "b"}, next: "c1"}
	e.authz.pages["c1"] = lookupPage{ids: []string{"gone", "c", "c"}, next: "c2"}
	e.authz.pages["c2"] = lookupPage{ids: []string{"d"}}
	for _, id := range []string{"a", "b", "c", "d"} {
		e.companies.byID[id] = authz.Company{ID: id, Name: strings.ToUpper(id)}
	}
	// A reader that returns more than it was asked must not widen the list.
	e.companies.extra = &authz.Company{ID: "not-yours", Name: "Secret"}

	var got, cursors []string
	target := "/v1/companies?permission=update&limit=2"
	for page := 0; ; page++ {
		if page > 3 {
			t.Fatal("pagination does not end")
		}
		rec := e.do("GET", target, "", header("Consistency-Token", "zed-7"))
		wantStatus(t, rec, http.StatusOK)
		body := decode[struct {
			Companies []struct {
				ID string `json:"id"`
			} `json:"companies"`
			NextCursor string `json:"next_cursor"`
		}](t, rec)
		for _, c := range body.Companies {
			got = append(got, c.ID)
		}
		if body.NextCursor == "" {
			break
		}
		if body.NextCursor == "c1" || body.NextCursor == "c2" {
			t.Errorf("backend cursor %q leaked unwrapped", body.NextCursor)
		}
		cursors = append(cursors, body.NextCursor)
		target = "/v1/companies?permission=update&limit=2&cursor=" + url.QueryEscape(body.NextCursor)
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	var backendCursors []string
	for _, l := range e.authz.lookups {
		backendCursors = append(backendCursors, l.cursor)
		if l.user != "alice" || l.perm != authz.PermUpdate || l.limit != 2 || l.cons.AtLeastAsFresh != "zed-7" {
			t.Errorf("lookup = %+v", l)
		}
	}
	if want := []string{"", "c1", "c2"}; !slices.Equal(backendCursors, want) {
		t.Errorf("backend cursors %v, want %v", backendCursors, want)
	}
	t.Run("cursor is bound to its permission", func(t *testing.T) {
		rec := e.do("GET", "/v1/companies?permission=read&cursor="+url.QueryEscape(cursors[0]), "")
		wantStatus(t, rec, http.StatusBadRequest)
	})
	t.Run("empty page", func(t *testing.T) {
		e := newEnv(t, gateway.Config{})
		rec := e.do("GET", "/v1/companies", "")
		wantStatus(t, rec, http.StatusOK)
		if got := strings.TrimSpace(rec.Body.String()); got != `{"companies":[]}` {
			t.Errorf("body = %s", got)
		}
	})
}

func TestReadyz(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	e.ready.Store(false)
	rec := e.do("GET", "/readyz", "", as(""))
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	e.ready.Store(true)
	wantStatus(t, e.do("GET", "/readyz", "", as("")), http.StatusOK)
	wantStatus(t, e.do("GET", "/healthz", "", as("")), http.StatusOK)
}

func TestMetricsCountRequestsAndDecisions(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	e.authz.allow[req("alice", authz.PermRead, "acme")] = true
	e.do("POST", "/v1/check", `{"permission":"read","company":"acme"}`)
	e.do("POST", "/v1/check", `{"permission":"delete","company":"acme"}`)
	e.do("POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"acme"},{"permission":"read","company":"other"}]}`)
	e.do("GET", "/no/such/route", "")
	e.do("POST", "/v1/check", `{}`, as(""))

	rec := e.do("GET", "/metrics", "", as(""))
	wantStatus(t, rec, http.StatusOK)
	metrics := rec.Body.String()
	for _, want := range []string{
		`tenantgate_http_requests_total{code="200",route="POST /v1/check"} 2`,
		`tenantgate_http_requests_total{code="200",route="POST /v1/check/bulk"} 1`,
		`tenantgate_http_requests_total{code="404",route="unmatched"} 1`,
		`tenantgate_http_requests_total{code="401",route="POST /v1/check"} 1`,
		`tenantgate_http_request_duration_seconds_count{route="POST /v1/check"} 3`,
		`tenantgate_check_decisions_total{decision="allowed",permission="read"} 2`,
		`tenantgate_check_decisions_total{decision="denied",permission="delete"} 1`,
		`tenantgate_check_decisions_total{decision="denied",permission="read"} 1`,
		`tenantgate_check_decisions_total{decision="error",permission="read"} 0`,
		"# HELP tenantgate_check_decisions_total",
		"# HELP tenantgate_http_requests_total",
		"# HELP tenantgate_http_request_duration_seconds",
	} {
		if !strings.Contains(metrics, want+"\n") && !strings.Contains(metrics, want+" ") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestConsistencyTokenReachesTheAuthorizer(t *testing.T) {
	tests := []struct {
		name, method, target, body, header, want string
	}{
		{"check body", "POST", "/v1/check", `{"permission":"read","company":"a","consistency_token":"zb"}`, "", "zb"},
		{"check header", "POST", "/v1/check", `{"permission":"read","company":"a"}`, "zh", "zh"},
		{"check both equal", "POST", "/v1/check", `{"permission":"read","company":"a","consistency_token":"z"}`, "z", "z"},
		{"check neither", "POST", "/v1/check", `{"permission":"read","company":"a"}`, "", ""},
		{"bulk body", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"}],"consistency_token":"zb"}`, "", "zb"},
		{"bulk header", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"}]}`, "zh", "zh"},
		{"permissions header", "GET", "/v1/companies/a/permissions", "", "zh", "zh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			var opts []reqOpt
			if tt.header != "" {
				opts = append(opts, header("Consistency-Token", tt.header))
			}
			wantStatus(t, e.do(tt.method, tt.target, tt.body, opts...), http.StatusOK)
			if len(e.authz.consistency) != 1 || e.authz.consistency[0].AtLeastAsFresh != tt.want {
				t.Errorf("consistency = %+v, want %q", e.authz.consistency, tt.want)
			}
		})
	}
}

func TestBackendCallsHaveTheRequestDeadline(t *testing.T) {
	e := newEnv(t, gateway.Config{RequestTimeout: 3 * time.Second})
	wantStatus(t, e.do("POST", "/v1/check", `{"permission":"read","company":"a"}`), http.StatusOK)
	if len(e.authz.deadlines) != 1 || e.authz.deadlines[0] > 3*time.Second || e.authz.deadlines[0] < 2*time.Second {
		t.Errorf("deadlines = %v, want one of about 3s", e.authz.deadlines)
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, given string
		echoed      bool
	}{
		{"plain id is echoed", "req-123_abc.def:1", true},
		{"uuid is echoed", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716", true},
		{"base64 and punctuation are echoed", "aGk+/=~!@#$%^&*(){}[]", true},
		{"none is generated", "", false},
		{"unsafe id is replaced", "bad id\r\nx", false},
		{"space is replaced", "a b", false},
		{"non-ascii is replaced", "idé", false},
		{"longest id is echoed", strings.Repeat("a", 200), true},
		{"overlong id is replaced", strings.Repeat("a", 201), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			rec := e.do("GET", "/v1/companies/acme/nope", "", header("X-Request-Id", tt.given))
			got := rec.Header().Get("X-Request-Id")
			if got == "" || (got == tt.given) != tt.echoed {
				t.Errorf("X-Request-Id = %q for %q", got, tt.given)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "request_id="+got) && !strings.Contains(logs, "request_id="+strconv.Quote(got)) {
				t.Errorf("request id not logged: %s", e.logs)
			}
		})
	}
}

func TestLogsNeverHoldTokens(t *testing.T) {
	e := newEnv(t, gateway.Config{ServiceToken: serviceToken})
	e.do("POST", "/v1/check", `{"permission":"read","company":"acme","subject":"bob"}`, as(serviceToken))
	e.do("POST", "/v1/check", `{"permission":"read","company":"acme"}`)
	e.do("GET", "/v1/companies", "", as("forged"))
	logs := e.logs.String()
	for _, secret := range []string{serviceToken, aliceToken, "forged"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs hold %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `route="POST /v1/check"`) || !strings.Contains(logs, "status=200") {
		t.Errorf("request not logged with route and status:\n%s", logs)
	}
}

// TestOpenAPIDescribesEveryRoute compares the routes the gateway's mux
// serves (with the management API) with the operations of openapi.yaml,
// both ways.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e, _ := newManageEnv(t)
	rec := e.do("GET", "/openapi.yaml", "", as(""))
	wantStatus(t, rec, http.StatusOK)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := yaml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	served := map[string]bool{}
	for _, pattern := range gateway.RoutePatterns(e.gw) {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			// A pattern for every method is described by its GET.
			method, path = "GET", pattern
		}
		// OpenAPI's templates hold one segment; the description says more.
		path = strings.ReplaceAll(path, "...}", "}")
		served[strings.ToLower(method)+" "+path] = true
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("openapi.yaml lacks %s", pattern)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" && !served[method+" "+path] {
				t.Errorf("openapi.yaml describes %s %s, which is not served", strings.ToUpper(method), path)
			}
		}
	}
	if len(served) < 14 {
		t.Errorf("only %d routes served: %v", len(served), served)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     gateway.Config
		wantErr string
	}{
		{name: "zero is all defaults", cfg: gateway.Config{}},
		{name: "service token", cfg: gateway.Config{ServiceToken: serviceToken}},
		{name: "short service token", cfg: gateway.Config{ServiceToken: "short"}, wantErr: "shorter than 16"},
		{name: "service token with space", cfg: gateway.Config{ServiceToken: "0123456789 abcdef"}, wantErr: "visible ASCII"},
		{name: "negative body", cfg: gateway.Config{MaxBodyBytes: -1}, wantErr: "max body bytes"},
		{name: "too many bulk checks", cfg: gateway.Config{MaxBulkChecks: 10_001}, wantErr: "max bulk checks"},
		{name: "page above SpiceDB limit", cfg: gateway.Config{MaxPageSize: 1001}, wantErr: "max page size"},
		{name: "default above max", cfg: gateway.Config{DefaultPageSize: 20, MaxPageSize: 10}, wantErr: "default page size"},
		{name: "negative timeout", cfg: gateway.Config{RequestTimeout: -time.Second}, wantErr: "request timeout"},
		{name: "consistency wait: default"},
		{name: "consistency wait: default under a short request timeout", cfg: gateway.Config{RequestTimeout: 3 * time.Second}},
		{name: "consistency wait: set", cfg: gateway.Config{ConsistencyWait: 9 * time.Second}},
		{name: "consistency wait: negative", cfg: gateway.Config{ConsistencyWait: -time.Second}, wantErr: "consistency wait"},
		{name: "consistency wait: as long as the request", cfg: gateway.Config{ConsistencyWait: 10 * time.Second}, wantErr: "shorter than the request timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRefusesIncompleteSetups(t *testing.T) {
	full := func() gateway.Deps {
		return gateway.Deps{Authn: &fakeAuthn{}, Authz: &fakeAuthz{}, Companies: &fakeCompanies{}}
	}
	if _, err := gateway.New(gateway.Config{}, full()); err != nil {
		t.Fatalf("New without a registry: %v", err)
	}
	shared := prometheus.NewRegistry()
	withShared := full()
	withShared.Registry = shared
	if _, err := gateway.New(gateway.Config{}, withShared); err != nil {
		t.Fatalf("first gateway on a registry: %v", err)
	}
	tests := []struct {
		name   string
		cfg    gateway.Config
		mutate func(*gateway.Deps)
	}{
		{name: "no authenticator", mutate: func(d *gateway.Deps) { d.Authn = nil }},
		{name: "no authorizer", mutate: func(d *gateway.Deps) { d.Authz = nil }},
		{name: "no company reader", mutate: func(d *gateway.Deps) { d.Companies = nil }},
		{name: "metrics already registered", mutate: func(d *gateway.Deps) { d.Registry = shared }},
		{name: "bad config", cfg: gateway.Config{MaxPageSize: -1}, mutate: func(*gateway.Deps) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := full()
			tt.mutate(&d)
			if _, err := gateway.New(tt.cfg, d); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestServerHasTimeouts(t *testing.T) {
	e := newEnv(t, gateway.Config{RequestTimeout: 20 * time.Second})
	s := e.gw.Server(":0")
	if s.Addr != ":0" || s.Handler == nil || s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("server = %+v", s)
	}
	if s.WriteTimeout <= 20*time.Second {
		t.Errorf("WriteTimeout %v does not outlast the request timeout", s.WriteTimeout)
	}
}
