package routes_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/routes"
)

const apiRoutes = `
routes:
  - methods: [GET, HEAD]
    path: /api/companies/{company}/**
    permission: read
  - methods: [DELETE]
    path: /api/companies/{company}
    permission: delete
  - methods: [PUT, PATCH]
    path: /api/companies/{company}
    permission: update
  - path: /api/companies/{company}/members/**
    permission: manage_members
  - methods: [GET]
    path: /api/companies/{company}/members/{user}
    permission: read
  - methods: [POST]
    path: /api/invoices
    permission: update
    company: {header: X-Company-ID}
  - path: /api/reports/*
    permission: read
    company: {query: company}
`

func mustParse(t *testing.T, yaml string) *routes.Table {
	t.Helper()
	table, err := routes.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func TestMatch(t *testing.T) {
	table := mustParse(t, apiRoutes)
	tests := []struct {
		name, method, uri string
		header            http.Header
		// want is "permission company", "unmatched", or "invalid".
		want string
	}{
		{"a path parameter", "GET", "/api/companies/acme/invoices/7", nil, "read acme"},
		{"** matches nothing left", "GET", "/api/companies/acme", nil, "read acme"},
		{"method picks the rule", "DELETE", "/api/companies/acme", nil, "delete acme"},
		{"a literal beats a parameter: members", "POST", "/api/companies/acme/members/bob", nil, "manage_members acme"},
		{"a rule with methods beats one for every method", "GET", "/api/companies/acme/members/bob", nil, "read acme"},
		{"the longer literal prefix wins over **", "GET", "/api/companies/acme/members", nil, "manage_members acme"},
		{"an escaped company is unescaped", "GET", "/api/companies/Z%C3%BCrich%20AG/x", nil, "read Zürich AG"},
		{"a header source", "POST", "/api/invoices", http.Header{"X-Company-Id": {"globex"}}, "update globex"},
		{"a query source", "GET", "/api/reports/q3?company=initech&x=1", nil, "read initech"},
		{"no rule for the method", "POST", "/api/companies/acme", nil, "unmatched"},
		{"no rule for the path", "GET", "/other", nil, "unmatched"},
		{"a trailing slash is another path", "DELETE", "/api/companies/acme/", nil, "unmatched"},
		{"dot segment", "GET", "/api/companies/acme/../globex/x", nil, "invalid"},
		{"encoded dot segment", "GET", "/api/companies/acme/%2e%2e/globex", nil, "invalid"},
		{"encoded slash", "GET", "/api/companies/acme%2F..%2Fglobex/x", nil, "invalid"},
		{"backslash", "GET", `/api/companies/acme\..\globex`, nil, "invalid"},
		{"empty segment", "GET", "/api//companies/acme", nil, "invalid"},
		{"control character", "GET", "/api/companies/ac\x00me", nil, "invalid"},
		{"bad escape", "GET", "/api/companies/%zz", nil, "invalid"},
		{"not a path", "GET", "http://evil/api/companies/acme", nil, "invalid"},
		{"header twice", "POST", "/api/invoices", http.Header{"X-Company-Id": {"acme", "globex"}}, "invalid"},
		{"header missing", "POST", "/api/invoices", nil, "invalid"},
		{"query twice", "GET", "/api/reports/q3?company=acme&company=globex", nil, "invalid"},
		{"query empty", "GET", "/api/reports/q3?company=", nil, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := table.Match(tt.method, tt.uri, tt.header)
			got := ""
			switch {
			case errors.Is(err, authz.ErrInvalid):
				got = "invalid"
			case err != nil:
				t.Fatalf("error %v is not ErrInvalid", err)
			case !m.Matched:
				got = "unmatched"
				if m.Allowed {
					t.Error("unmatched requests allowed by a file that does not say so")
				}
			default:
				got = string(m.Permission) + " " + m.Company
			}
			if got != tt.want {
				t.Errorf("Match(%s %s) = %q, want %q", tt.method, tt.uri, got, tt.want)
			}
		})
	}
}

func TestUnmatchedAllow(t *testing.T) {
	table := mustParse(t, "unmatched: allow\nroutes:\n  - path: /c/{company}\n    permission: read\n")
	m, err := table.Match("GET", "/public", nil)
	if err != nil || m.Matched || !m.Allowed {
		t.Errorf("Match = %+v, %v; want unmatched and allowed", m, err)
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown permission", "routes:\n  - path: /c/{company}\n    permission: write\n", `unknown permission "write"`},
		{"no company source", "routes:\n  - path: /c/{id}\n    permission: read\n", "no company source"},
		{"two company sources", "routes:\n  - path: /c/{company}\n    permission: read\n    company: {header: X-Company}\n", "more than one company source"},
		{"overlap", "routes:\n  - methods: [GET]\n    path: /c/{company}\n    permission: read\n  - methods: [GET, PUT]\n    path: /c/{x}\n    permission: update\n    company: {query: c}\n", "match the same requests"},
		{"overlap of two rules for every method", "routes:\n  - path: /c/{company}/**\n    permission: read\n  - path: /c/{company}/**\n    permission: update\n", "match the same requests"},
		{"** not last", "routes:\n  - path: /c/**/{company}\n    permission: read\n", "** may only be the last"},
		{"relative path", "routes:\n  - path: c/{company}\n    permission: read\n", "must start with /"},
		{"bad parameter", "routes:\n  - path: /c/{Company}\n    permission: read\n", "want {name}"},
		{"parameter twice", "routes:\n  - path: /c/{company}/{company}\n    permission: read\n", "appears twice"},
		{"lower-case method", "routes:\n  - methods: [get]\n    path: /c/{company}\n    permission: read\n", "upper-case HTTP method"},
		{"unknown key", "routes:\n  - path: /c/{company}\n    permission: read\n    perm: x\n", "unknown field"},
		{"unmatched value", "unmatched: maybe\nroutes:\n  - path: /c/{company}\n    permission: read\n", "want deny or allow"},
		{"no routes", "unmatched: deny\n", "no routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := routes.Parse([]byte(tt.yaml))
			if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

// TestPrecedenceIgnoresFileOrder: the same rules in any order give the same
// answers.
func TestPrecedenceIgnoresFileOrder(t *testing.T) {
	lines := strings.Split(strings.TrimPrefix(apiRoutes, "\nroutes:\n"), "  - ")
	var rules []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			rules = append(rules, "  - "+l)
		}
	}
	forward := mustParse(t, "routes:\n"+strings.Join(rules, ""))
	for i, j := 0, len(rules)-1; i < j; i, j = i+1, j-1 {
		rules[i], rules[j] = rules[j], rules[i]
	}
	backward := mustParse(t, "routes:\n"+strings.Join(rules, ""))
	for _, req := range [][2]string{{"GET", "/api/companies/a/members/b"}, {"POST", "/api/companies/a/members/b"}, {"GET", "/api/companies/a/members"}, {"GET", "/api/companies/a"}} {
		a, _ := forward.Match(req[0], req[1], nil)
		b, _ := backward.Match(req[0], req[1], nil)
		if a != b {
			t.Errorf("%v: %+v in file order, %+v reversed", req, a, b)
		}
	}
}

func FuzzMatchNeverPanics(f *testing.F) {
	table, err := routes.Parse([]byte(apiRoutes))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"/api/companies/acme/x", "/api/companies/%2e%2e/x", "/api/reports/q?company=a", "//", "/api/companies/a%"} {
		f.Add("GET", seed)
	}
	f.Fuzz(func(t *testing.T, method, uri string) {
		m, err := table.Match(method, uri, nil)
		if err == nil && m.Matched {
			if err := authz.ValidateCompanyID(m.Company); err != nil {
				t.Errorf("matched an invalid company %q", m.Company)
			}
			path, _, _ := strings.Cut(uri, "?")
			for _, seg := range strings.Split(path, "/") {
				if s := strings.ToLower(seg); s == ".." || s == "." || s == "%2e%2e" || s == "%2e" || s == ".%2e" || s == "%2e." {
					t.Errorf("matched a path with a dot segment: %q", uri)
				}
			}
		}
	})
}

// TestExampleFile keeps the example the docs point at loadable.
func TestExampleFile(t *testing.T) {
	table, err := routes.Load("../../deploy/proxy/routes.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ method, uri, want string }{
		{"DELETE", "/api/companies/acme", "delete"},
		{"DELETE", "/api/companies/acme/invoices/1", "update"},
		{"GET", "/api/companies/acme/members/bob", "manage_members"},
		{"GET", "/api/reports/q3?company=acme", "read"},
	} {
		m, err := table.Match(tt.method, tt.uri, nil)
		if err != nil || string(m.Permission) != tt.want || m.Company != "acme" {
			t.Errorf("%s %s: %+v, %v; want %s on acme", tt.method, tt.uri, m, err, tt.want)
		}
	}
}
