package gateway_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// hostileCase is one hostile request of issue 15's list. Alice holds every
// permission on acme, so a hostile ID that the gateway confused with acme
// would show as an allow.
type hostileCase struct {
	name           string
	method, target string
	body           string
	opts           []reqOpt
	want           int
	// asked is the one company the Authorizer may be asked about: an
	// opaque ID is a plain question, answered with a deny. "" means a
	// refusal that reaches no backend.
	asked string
	// check, when set, looks at what the backends got.
	check func(t *testing.T, e *env)
}

func TestHostileInput(t *testing.T) {
	long := strings.Repeat("x", authz.MaxIDBytes+1)
	atLimit := strings.Repeat("x", authz.MaxIDBytes)
	svc := []reqOpt{as(serviceToken)}
	check := func(company string) string { return fmt.Sprintf(`{"permission":"read","company":%s}`, company) }
	evaluation := func(resourceID string, extra ...string) string {
		return fmt.Sprintf(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":%s}%s}`, resourceID, strings.Join(extra, ""))
	}
	search := func(page string) string {
		return `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"},"page":` + page + `}`
	}
	forward := func(uri string) []reqOpt { return original("GET", uri) }
	items := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	overBody := strings.Repeat(" ", 256<<10)

	tests := []hostileCase{
		// IDs over authz.MaxIDBytes, wherever an ID is taken.
		{name: "ID over MaxIDBytes in the path", method: "GET", target: "/v1/companies/" + long + "/permissions", want: 400},
		{name: "ID over MaxIDBytes in a check", method: "POST", target: "/v1/check", body: check(`"` + long + `"`), want: 400},
		{name: "ID over MaxIDBytes in a bulk item", method: "POST", target: "/v1/check/bulk", body: `{"checks":[{"permission":"read","company":"acme"},{"permission":"read","company":"` + long + `"}]}`, want: 400},
		{name: "ID over MaxIDBytes as the service's subject", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme","subject":"` + long + `"}`, opts: svc, want: 400},
		{name: "ID over MaxIDBytes as an AuthZEN resource", method: "POST", target: "/access/v1/evaluation", body: evaluation(`"` + long + `"`), want: 400},
		{name: "ID over MaxIDBytes in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/" + long + "/x"), want: 400},
		{name: "ID over MaxIDBytes in a new company", method: "POST", target: "/v1/companies", body: `{"name":"A","id":"` + long + `"}`, want: 400},
		{name: "ID of exactly MaxIDBytes is a plain question", method: "POST", target: "/v1/check", body: check(`"` + atLimit + `"`), want: 200, asked: atLimit},

		// ..%2F in IDs: an opaque ID, never a path to another company.
		{name: "..%2F in a path ID", method: "GET", target: "/v1/companies/..%2Facme/permissions", want: 200, asked: "../acme"},
		{name: "..%2F in a body ID", method: "POST", target: "/v1/check", body: check(`"..%2Facme"`), want: 200, asked: "..%2Facme"},
		{name: "../ in a body ID", method: "POST", target: "/v1/check", body: check(`"../acme"`), want: 200, asked: "../acme"},
		{name: "..%2F in an AuthZEN resource", method: "POST", target: "/access/v1/evaluation", body: evaluation(`"..%2Facme"`), want: 200, asked: "..%2Facme"},
		{name: "..%2F in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/..%2Facme/x"), want: 400},
		{name: "encoded dot segment in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/globex/%2e%2e/acme/x"), want: 400},
		{name: "..%2F after the forward-auth path (Envoy)", method: "GET", target: "/v1/forward-auth/api/companies/..%2Facme/x", want: 400},

		// # in IDs: part of the ID, never the end of the path.
		{name: "%23 in a path ID", method: "GET", target: "/v1/companies/acme%23globex/permissions", want: 200, asked: "acme#globex"},
		{name: "raw # in a path ID", method: "GET", target: "/v1/companies/acme#globex/permissions", want: 200, asked: "acme#globex"},
		{name: "# in a body ID", method: "POST", target: "/v1/check", body: check(`"acme#globex"`), want: 200, asked: "acme#globex"},
		{name: "%23 in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/acme%23x/y"), want: 403, asked: "acme#x"},
		{name: "raw # in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/acme#/../globex/x"), want: 400},

		// NUL and invalid UTF-8, in IDs and bodies.
		{name: "NUL in a path ID", method: "GET", target: "/v1/companies/acme%00/permissions", want: 400},
		{name: "escaped NUL in a body ID", method: "POST", target: "/v1/check", body: check(`"acme\u0000"`), want: 400},
		{name: "raw NUL in a body ID", method: "POST", target: "/v1/check", body: check("\"acme\x00\""), want: 400},
		{name: "raw NUL between JSON tokens", method: "POST", target: "/v1/check", body: "{\"permission\":\"read\",\x00\"company\":\"acme\"}", want: 400},
		{name: "NUL in a query value", method: "GET", target: "/v1/companies?permission=read%00", want: 400},
		{name: "NUL in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/acme%00/x"), want: 400},
		{name: "NUL in a new company's name", method: "POST", target: "/v1/companies", body: `{"name":"a\u0000b"}`, want: 400},
		{name: "invalid UTF-8 in a path ID", method: "GET", target: "/v1/companies/acme%FF/permissions", want: 400},
		{name: "invalid UTF-8 in a forward-auth URI", method: "GET", target: "/v1/forward-auth", opts: forward("/api/companies/acme%FF/x"), want: 400},
		{name: "invalid UTF-8 in a body key", method: "POST", target: "/v1/check", body: "{\"permission\":\"read\",\"comp\xffany\":\"acme\"}", want: 400},
		{name: "invalid UTF-8 in a body ID", method: "POST", target: "/v1/check", body: check("\"acme\xff\""), want: 400},
		{name: "lone surrogate in a body ID", method: "POST", target: "/v1/check", body: check(`"acme\ud800"`), want: 400},
		{name: "invalid UTF-8 in an AuthZEN subject", method: "POST", target: "/access/v1/evaluation", opts: svc,
			body: "{\"subject\":{\"type\":\"user\",\"id\":\"alice\xff\"},\"action\":{\"name\":\"read\"},\"resource\":{\"type\":\"company\",\"id\":\"acme\"}}", want: 400},

		// Bodies over the limit: 413, before anything is decoded.
		{name: "check body over the limit", method: "POST", target: "/v1/check", body: `{"permission":"read","company":"acme"` + overBody + `}`, want: 413},
		{name: "AuthZEN body over the limit", method: "POST", target: "/access/v1/evaluations", body: evaluation(`"acme"`) + overBody, want: 413},
		{name: "management body over the limit", method: "PUT", target: "/v1/companies/acme/members/bob", body: `{"role":"viewer"` + overBody + `}`, want: 413},

		// Bulk over the item limit (the default, 1000).
		{name: "bulk check over the item limit", method: "POST", target: "/v1/check/bulk", body: `{"checks":[` + items(1001, `{"permission":"read","company":"acme"}`) + `]}`, want: 400},
		{name: "AuthZEN evaluations over the item limit", method: "POST", target: "/access/v1/evaluations", body: evaluation(`"acme"`, `,"evaluations":[`+items(1001, `{}`)+`]`), want: 400},

		// Limits far out of range.
		{name: "limit=1000000000", method: "GET", target: "/v1/companies?limit=1000000000", want: 400},
		{name: "limit=-1", method: "GET", target: "/v1/companies?limit=-1", want: 400},
		{name: "limit beyond int64", method: "GET", target: "/v1/companies?limit=99999999999999999999", want: 400},
		{name: "audit limit=1000000000", method: "GET", target: "/v1/companies/acme/audit?limit=1000000000", want: 400},
		{name: "audit limit=-1", method: "GET", target: "/v1/companies/acme/audit?limit=-1", want: 400},
		{name: "AuthZEN page.limit=-1", method: "POST", target: "/access/v1/search/resource", body: search(`{"limit":-1}`), want: 400},
		{name: "AuthZEN page.limit beyond int64", method: "POST", target: "/access/v1/search/resource", body: search(`{"limit":1e30}`), want: 400},
		// AuthZEN lets a PDP return fewer than asked: a huge limit is the
		// largest page.
		{name: "AuthZEN page.limit=1000000000 is the largest page", method: "POST", target: "/access/v1/search/resource", body: search(`{"limit":1000000000}`), want: 200,
			check: func(t *testing.T, e *env) {
				if len(e.authz.lookups) != 1 || e.authz.lookups[0].limit != 1000 {
					t.Errorf("lookups %+v, want one of the largest page size, 1000", e.authz.lookups)
				}
			}},

		// Forged cursors and page tokens.
		{name: "cursor not base64", method: "GET", target: "/v1/companies?cursor=%21%21", want: 400},
		{name: "cursor of no JSON", method: "GET", target: "/v1/companies?cursor=" + b64("c1"), want: 400},
		{name: "cursor forged for another permission", method: "GET", target: "/v1/companies?cursor=" + cursorFor("manage_owners", "c1"), want: 400},
		{name: "cursor forged for the listing of every company", method: "GET", target: "/v1/companies?cursor=" + b64(`{"permission":"read","all":true,"cursor":"acme"}`), want: 400},
		{name: "cursor forged with a nested value", method: "GET", target: "/v1/companies?cursor=" + b64(`{"permission":"read","cursor":`+nested(10000)+`}`), want: 400},
		{name: "cursor over the size bound", method: "GET", target: "/v1/companies?cursor=" + strings.Repeat("A", 4097), want: 400},
		// Cursors are not signed: a made-up position is one in the
		// caller's own listing, which grants nothing.
		{name: "cursor forged for the caller's own listing", method: "GET", target: "/v1/companies?cursor=" + cursorFor("read", "made-up"), want: 200,
			check: func(t *testing.T, e *env) {
				if len(e.authz.lookups) != 1 || e.authz.lookups[0].user != "alice" || e.authz.lookups[0].cursor != "made-up" {
					t.Errorf("lookups %+v, want alice's listing from the made-up position", e.authz.lookups)
				}
			}},
		{name: "audit cursor forged", method: "GET", target: "/v1/companies/acme/audit?cursor=-1", want: 400},
		{name: "page token not base64", method: "POST", target: "/access/v1/search/resource", body: search(`{"token":"!!"}`), want: 400},
		{name: "page token forged for another search", method: "POST", target: "/access/v1/search/resource", body: search(`{"token":"` + b64(`{"s":"another","a":"acme","l":5}`) + `"}`), want: 400},
		{name: "page token forged with a huge limit", method: "POST", target: "/access/v1/search/resource", body: search(`{"token":"` + b64(`{"a":"acme","l":1000000000}`) + `"}`), want: 400},

		// Deeply nested JSON, wherever a body may nest (bulk checks:
		// TestBodyKeysAreExact).
		{name: "nested JSON in a check's string field", method: "POST", target: "/v1/check", body: `{"permission":"read","company":` + nested(100_000) + `}`, want: 400},
		{name: "nested JSON in an unknown AuthZEN field", method: "POST", target: "/access/v1/evaluation", body: evaluation(`"acme"`, `,"future":`+nested(100_000)), want: 400},
		{name: "nested JSON in AuthZEN properties", method: "POST", target: "/access/v1/evaluation",
			body: `{"subject":{"type":"user","id":"alice","properties":{"x":` + nested(100_000) + `}},"action":{"name":"read"},"resource":{"type":"company","id":"acme"}}`, want: 400},
		{name: "nested JSON in an AuthZEN boxcar item", method: "POST", target: "/access/v1/evaluations", body: evaluation(`"acme"`, `,"evaluations":[`+nested(100_000)+`]`), want: 400},
		{name: "unclosed nesting in a management body", method: "POST", target: "/v1/companies", body: `{"name":` + strings.Repeat("[", 200_000), want: 400},

		// Duplicate query parameters and headers.
		{name: "duplicate limit", method: "GET", target: "/v1/companies?limit=1&limit=2", want: 400},
		{name: "duplicate permission", method: "GET", target: "/v1/companies?permission=read&permission=delete", want: 400},
		{name: "duplicate cursor", method: "GET", target: "/v1/companies?cursor=" + cursorFor("read", "c1") + "&cursor=" + cursorFor("read", "c2"), want: 400},
		{name: "parameter repeated in another case", method: "GET", target: "/v1/companies?permission=read&Permission=delete", want: 400},
		{name: "parameters split by semicolons", method: "GET", target: "/v1/companies?limit=1;limit=2", want: 400},
		{name: "duplicate explain", method: "GET", target: "/v1/companies/acme/permissions?explain=false&explain=true", want: 400},
		{name: "duplicate audit limit", method: "GET", target: "/v1/companies/acme/audit?limit=1&limit=2", want: 400},
		{name: "duplicate Authorization header", method: "GET", target: "/v1/companies", opts: []reqOpt{func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+supportToken) }}, want: 401},
		{name: "duplicate X-Original-URI header", method: "GET", target: "/v1/forward-auth",
			opts: append(forward("/api/companies/acme/x"), func(r *http.Request) { r.Header.Add("X-Original-URI", "/api/companies/globex/x") }), want: 400},
		{name: "duplicate Consistency-Token header", method: "POST", target: "/v1/check", body: check(`"acme"`),
			opts: []reqOpt{func(r *http.Request) {
				r.Header.Add("Consistency-Token", "zed-old")
				r.Header.Add("Consistency-Token", "zed-new")
			}}, want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want >= 500 {
				t.Fatalf("a hostile input must not be a %d", tt.want)
			}
			m := &fakeManager{}
			e := buildEnv(t, gateway.Config{ServiceToken: serviceToken}, nil, func(e *env) {
				e.manager, e.users = m, fakeUsers{}
				e.routes = mustRoutes(t, testRoutes)
				for _, p := range authz.Permissions {
					e.authz.allow[authz.CheckRequest{User: "alice", Permission: p, Company: "acme"}] = true
				}
			})
			rec := e.do(tt.method, tt.target, tt.body, tt.opts...) // checks the problem document of a 4xx
			wantStatus(t, rec, tt.want)
			if n := allowsIn(t, rec.Body.Bytes()); n != 0 || strings.Contains(rec.Body.String(), `":true`) {
				t.Errorf("the answer allows something: %s", rec.Body)
			}
			e.authz.mu.Lock()
			defer e.authz.mu.Unlock()
			for _, c := range e.authz.checks {
				if c.Company != tt.asked || tt.asked == "" {
					t.Errorf("the authorizer was asked about %q; want %s", c.Company, map[bool]string{true: "nothing", false: fmt.Sprintf("%q only", tt.asked)}[tt.asked == ""])
				}
			}
			if tt.asked != "" && len(e.authz.checks) == 0 {
				t.Errorf("the authorizer was not asked about %q", tt.asked)
			}
			if tt.check != nil {
				tt.check(t, e)
			} else if len(e.authz.lookups) != 0 {
				t.Errorf("the authorizer listed %+v", e.authz.lookups)
			}
			if tt.want >= 400 && m.calls.Load() != 0 {
				t.Errorf("a refused request reached the manager %d times", m.calls.Load())
			}
		})
	}
}
