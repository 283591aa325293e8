package gateway_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/routes"
)

const testRoutes = `
routes:
  - methods: [GET]
    path: /api/companies/{company}/**
    permission: read
  - methods: [DELETE]
    path: /api/companies/{company}
    permission: delete
`

func mustRoutes(t *testing.T, yaml string) *routes.Table {
	t.Helper()
	table, err := routes.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func original(method, uri string) []reqOpt {
	return []reqOpt{header("X-Original-Method", method), header("X-Original-URI", uri)}
}

func TestForwardAuth(t *testing.T) {
	setup := func(e *env) {
		allowAlice(e)
		e.routes = mustRoutes(t, testRoutes)
		e.companies.byID["globex"] = authz.Company{ID: "globex", Name: "Globex"}
	}
	tests := []struct {
		name   string
		target string // the sub-request's own method and path
		opts   []reqOpt
		status int
		// company is the X-Tenantgate-Company of a 200, "" for none.
		company string
	}{
		{"nginx's headers, allowed", "GET /v1/forward-auth", original("GET", "/api/companies/acme/invoices?x=1"), 200, "acme"},
		{"Caddy's and Traefik's headers", "GET /v1/forward-auth",
			[]reqOpt{header("X-Forwarded-Method", "GET"), header("X-Forwarded-Uri", "/api/companies/acme/x")}, 200, "acme"},
		{"Envoy: the original method and path follow the prefix", "GET /v1/forward-auth/api/companies/acme/x?y=2", nil, 200, "acme"},
		{"denied", "GET /v1/forward-auth", original("DELETE", "/api/companies/acme"), 403, ""},
		{"another tenant", "GET /v1/forward-auth", original("GET", "/api/companies/globex/x"), 403, ""},
		{"no rule: denied", "GET /v1/forward-auth", original("POST", "/api/companies/acme"), 403, ""},
		{"no token", "GET /v1/forward-auth", append(original("GET", "/api/companies/acme/x"), as("")), 401, ""},
		{"the service token names no user", "GET /v1/forward-auth", append(original("GET", "/api/companies/acme/x"), as(serviceToken)), 403, ""},
		{"a dot segment", "GET /v1/forward-auth", original("GET", "/api/companies/globex/../acme/x"), 400, ""},
		{"no original request", "GET /v1/forward-auth", nil, 400, ""},
		{"half an original request", "GET /v1/forward-auth", []reqOpt{header("X-Original-Method", "GET")}, 400, ""},
		{"a platform role", "GET /v1/forward-auth", append(original("GET", "/api/companies/globex/x"), as(supportToken)), 200, "globex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := buildEnv(t, gateway.Config{ServiceToken: serviceToken, PlatformRoles: authz.PlatformRoles{"support": authz.RoleViewer}}, nil, setup)
			var method, path string
			fmt.Sscan(tt.target, &method, &path)
			rec := e.do(method, path, "", tt.opts...)
			wantStatus(t, rec, tt.status)
			if got := rec.Header().Get("X-Tenantgate-Company"); got != tt.company {
				t.Errorf("X-Tenantgate-Company = %q, want %q", got, tt.company)
			}
			if tt.status == 200 && rec.Header().Get("X-Tenantgate-User") == "" {
				t.Error("no X-Tenantgate-User on an allow")
			}
		})
	}

	t.Run("fails closed", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{}, nil, func(e *env) {
			setup(e)
			e.authz.err = fmt.Errorf("spicedb: %w", authz.ErrUnavailable)
		})
		rec := e.do("GET", "/v1/forward-auth", "", original("GET", "/api/companies/acme/x")...)
		wantStatus(t, rec, http.StatusServiceUnavailable)
		if rec.Header().Get("X-Tenantgate-User") != "" {
			t.Error("a failure carries the user header")
		}
	})

	t.Run("the original request's consistency token is honoured", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{}, nil, setup)
		e.do("GET", "/v1/forward-auth", "", append(original("GET", "/api/companies/acme/x"), header("Consistency-Token", "zed-7"))...)
		if c := e.authz.consistency; len(c) != 1 || c[0].AtLeastAsFresh != "zed-7" {
			t.Errorf("consistency %+v, want at least as fresh as zed-7", c)
		}
	})

	t.Run("unmatched: allow lets requests through without a token", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{}, nil, func(e *env) {
			e.routes = mustRoutes(t, "unmatched: allow\n"+testRoutes)
		})
		rec := e.do("GET", "/v1/forward-auth", "", append(original("GET", "/public/x"), as(""))...)
		wantStatus(t, rec, 200)
		if rec.Header().Get("X-Tenantgate-User") != "" || e.authz.calls() != 0 {
			t.Error("an unmatched request was checked or given a user")
		}
	})

	t.Run("no route file, no route", func(t *testing.T) {
		wantStatus(t, newEnv(t, gateway.Config{}).do("GET", "/v1/forward-auth", "", original("GET", "/api/companies/acme/x")...), 404)
	})
}
