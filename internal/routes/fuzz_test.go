package routes_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/routes"
)

// upstreamPath is the request target as a Go upstream reads it (net/http
// parses the request line with url.ParseRequestURI): its path segments,
// unescaped. ok is false for a target the upstream refuses outright.
func upstreamPath(uri string) (segments []string, query url.Values, ok bool) {
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Opaque != "" || u.Host != "" {
		return nil, nil, false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, nil, false
	}
	return strings.Split(strings.TrimPrefix(u.Path, "/"), "/"), q, true
}

// respell writes uri's path again, every segment unescaped and escaped
// anew: the same path to any reader, spelt differently.
func respell(uri string) string {
	path, query, hasQuery := strings.Cut(uri, "?")
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if u, err := url.PathUnescape(s); err == nil {
			segs[i] = url.PathEscape(u)
		}
	}
	out := strings.Join(segs, "/")
	if hasQuery {
		out += "?" + query
	}
	return out
}

// FuzzMatchAgreesWithTheUpstream: whatever the original URI, Match either
// refuses it with an ErrInvalid (a 400 at the gateway) or decides on the
// path the upstream will serve. A matched request's company is what a Go
// upstream reads in the same segment (or the same single query value), so
// that the company checked is the company served; the same path spelt
// with other escapes gets the same answer; and the answer does not
// depend on anything but the request.
func FuzzMatchAgreesWithTheUpstream(f *testing.F) {
	table, err := routes.Parse([]byte(apiRoutes))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"/api/companies/acme/x", "/api/companies/acme", "/api/companies/..%2Facme/x", "/api/companies/acme%2F..%2Fglobex/x",
		"/api/companies/%2e%2e/x", "/api/companies/acme/%2E", "/api/companies/ac%00me/x", "/api/companies/ac\x00me/x", "/api/companies/ac%FFme/x",
		"/api/companies/" + strings.Repeat("x", authz.MaxIDBytes+1) + "/x", "/api/companies/a%23b/x", "/api/companies/%61cme/x",
		"/api/companies/acme/members/bob", "/api/reports/q3?company=acme", "/api/reports/q3?company=acme&company=globex",
		"/api/reports/q3?company=acme;company=globex", "/api/reports/q3?company=%00", "/api/reports/q3?company=a%2Fb", "/api/companies/acme?x=1#y",
		"/api//companies/acme", "/api/companies/acme\\..\\globex", "//evil/api/companies/acme", "/api/companies/acme/x/../../globex",
		"/api/invoices", "*", "/api/companies/ac me/x", "/api/companies/%zz/x"} {
		f.Add("GET", seed, "acme")
	}
	f.Add("POST", "/api/invoices", "acme\x00")
	f.Add("POST", "/api/invoices", "..%2F")
	f.Fuzz(func(t *testing.T, method, uri, headerCompany string) {
		h := http.Header{"X-Company-Id": {headerCompany}}
		m, err := table.Match(method, uri, h)
		if again, againErr := table.Match(method, uri, h); again != m || (againErr == nil) != (err == nil) {
			t.Fatalf("Match(%s %q) answers %+v, %v, then %+v, %v", method, uri, m, err, again, againErr)
		}
		if err != nil {
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("Match(%s %q) = %v: not an ErrInvalid", method, uri, err)
			}
			return
		}
		if !m.Matched {
			if m.Allowed {
				t.Fatalf("Match(%s %q) allowed an unmatched request; the file does not say so", method, uri)
			}
			return
		}
		if err := authz.ValidateCompanyID(m.Company); err != nil {
			t.Fatalf("Match(%s %q) matched the invalid company %q", method, uri, m.Company)
		}
		if strings.Contains(uri, "#") {
			t.Fatalf("Match(%s %q) matched a target with a raw '#', which the upstream reads as part of the path", method, uri)
		}
		segs, query, ok := upstreamPath(uri)
		if !ok {
			return // the upstream refuses it and serves nothing (a control character in the query, say)
		}
		for _, s := range segs {
			if s == "." || s == ".." || s == "" && len(segs) > 1 && s != segs[len(segs)-1] {
				t.Fatalf("Match(%s %q) matched a path with a dot or empty segment %q", method, uri, segs)
			}
		}
		switch {
		case strings.Contains(m.Rule, "{company}"):
			i := strings.Count(m.Rule[:strings.Index(m.Rule, "{company}")], "/") - 1
			if i >= len(segs) || segs[i] != m.Company {
				t.Fatalf("Match(%s %q) checks company %q; the upstream reads the path %q", method, uri, m.Company, segs)
			}
		case m.Rule == "/api/reports/*":
			if v := query["company"]; len(v) != 1 || v[0] != m.Company {
				t.Fatalf("Match(%s %q) checks company %q; the upstream reads the query %v", method, uri, m.Company, query)
			}
		case m.Company != headerCompany:
			t.Fatalf("Match(%s %q) checks company %q; the header names %q", method, uri, m.Company, headerCompany)
		}
		if again, err := table.Match(method, respell(uri), h); err != nil || again != m {
			t.Fatalf("Match(%s %q) = %+v; the same path spelt %q gives %+v, %v", method, uri, m, respell(uri), again, err)
		}
	})
}

// TestOriginalURIWithAFragmentIsRefused: a request target never carries a
// fragment (browsers strip it), but a client can send a raw '#', and
// nginx passes it on in $request_uri, to tenantgate as X-Original-URI and
// to the upstream as part of the path. Cutting the URI at '#' would check another path than the upstream serves: here read on acme,
// where a Go upstream serves /api/companies/acme#/../globex/x (a router
// that resolves dot segments: globex's). Such a target is refused, like
// every other path two readers could read differently.
func TestOriginalURIWithAFragmentIsRefused(t *testing.T) {
	table, err := routes.Parse([]byte(apiRoutes))
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"/api/companies/acme#/../globex/x", "/api/companies/acme#x/y", "/api/reports/q3#?company=acme", "/api/reports/q3?company=acme#&company=globex"} {
		if m, err := table.Match("GET", uri, nil); !errors.Is(err, authz.ErrInvalid) {
			t.Errorf("Match(GET %q) = %+v, %v; want it refused", uri, m, err)
		}
	}
}
