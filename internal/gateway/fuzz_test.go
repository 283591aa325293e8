package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// Fuzz targets that drive the real gateway.Handler() over the package's
// fakes. Whatever the input, the gateway answers 2xx or 4xx (never a 5xx,
// which would mean it did not know what to do with its own input), every
// error is a problem document, a refused request reaches no backend, and
// no answer holds an allow the Authorizer did not give.

// fuzzConfig keeps the limits small, so that the fuzzer reaches them.
var fuzzConfig = gateway.Config{
	ServiceToken:    serviceToken,
	MaxBodyBytes:    4096,
	MaxBulkChecks:   5,
	MaxPageSize:     50,
	DefaultPageSize: 10,
	PlatformRoles:   authz.PlatformRoles{"support": authz.RoleViewer},
}

// positionWaiter is a sync that has applied every WAL position up to
// appliedUpTo and knows nothing beyond, which no write answered with.
type positionWaiter struct{}

const appliedUpTo = authz.LSN(1 << 40)

func (positionWaiter) AwaitApplied(_ context.Context, pos authz.Position) (string, error) {
	if pos.LSN > appliedUpTo {
		return "", gateway.ErrPositionAhead
	}
	return "zed-applied", nil
}

// newFuzzEnv builds a gateway with every route over fakes: alice may read
// acme, bob (asked about by the service) may read globex, and listings
// have two pages.
func newFuzzEnv(t *testing.T) (*env, *fakeManager) {
	t.Helper()
	m := &fakeManager{}
	e := buildEnv(t, fuzzConfig, positionWaiter{}, func(e *env) {
		e.manager, e.users = m, fakeUsers{}
		e.routes = mustRoutes(t, testRoutes)
		e.authz.allow[authz.CheckRequest{User: "alice", Permission: authz.PermRead, Company: "acme"}] = true
		e.authz.allow[authz.CheckRequest{User: "bob", Permission: authz.PermRead, Company: "globex"}] = true
		e.authz.pages[""] = lookupPage{ids: []string{"acme", "globex"}, next: "c1"}
		e.authz.pages["c1"] = lookupPage{ids: []string{"initech"}}
		for _, id := range []string{"acme", "globex", "initech"} {
			e.companies.byID[id] = authz.Company{ID: id, Name: strings.ToUpper(id)}
		}
	})
	return e, m
}

// serve sends r through the gateway and checks what every answer owes:
// a 2xx, or a 4xx problem document; 501 only for an explanation, which
// this gateway has no explainer for.
func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.gw.Handler().ServeHTTP(rec, r)
	switch {
	case rec.Code >= 200 && rec.Code < 300:
		if rec.Code != http.StatusNoContent && !json.Valid(rec.Body.Bytes()) {
			e.t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
	case rec.Code >= 400 && rec.Code < 500:
		assertProblem(e.t, rec.Code, rec.Header(), rec.Body.Bytes())
	case rec.Code == http.StatusNotImplemented && strings.Contains(rec.Body.String(), "no explainer"):
		assertProblem(e.t, rec.Code, rec.Header(), rec.Body.Bytes())
	default:
		e.t.Fatalf("%s %s: status %d; body %s\nlogs:\n%s", r.Method, r.URL, rec.Code, rec.Body, e.logs)
	}
	if granted, given := allowsIn(e.t, rec.Body.Bytes()), e.authz.granted(); granted > given {
		e.t.Fatalf("%s %s: the answer holds %d allows, the Authorizer gave %d: %s", r.Method, r.URL, granted, given, rec.Body)
	}
	return rec
}

// granted counts the allows the Authorizer answered.
func (f *fakeAuthz) granted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.checks {
		if f.allow[c] && f.err == nil {
			n++
		}
	}
	return n
}

// allowsIn counts the "allowed": true and "decision": true of an answer.
func allowsIn(t *testing.T, body []byte) int {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return 0 // an empty 204, say; a JSON answer is checked in serve
	}
	n := 0
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if (k == "allowed" || k == "decision") && x == true {
					n++
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return n
}

// bodyRoutes are the routes that take a JSON body.
var bodyRoutes = []struct{ method, target string }{
	{"POST", "/v1/check"},
	{"POST", "/v1/check/bulk"},
	{"POST", "/access/v1/evaluation"},
	{"POST", "/access/v1/evaluations"},
	{"POST", "/access/v1/search/resource"},
	{"POST", "/access/v1/search/action"},
	{"POST", "/access/v1/search/subject"},
	{"POST", "/v1/companies"},
	{"PATCH", "/v1/companies/acme"},
	{"PUT", "/v1/companies/acme/members/bob"},
}

// FuzzRequestBody: any body on any JSON route, from a user or the service.
// The low bits of route pick the route, the high bit the service token.
// A body refused as malformed (400, 413, 415) reaches neither the
// Authorizer nor the manager.
func FuzzRequestBody(f *testing.F) {
	for i, body := range bodySeeds {
		f.Add(uint8(i), []byte(body))
		f.Add(uint8(i)|0x80, []byte(body))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route&0x7f)%len(bodyRoutes)]
		e, m := newFuzzEnv(t)
		r := httptest.NewRequest(rt.method, rt.target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+aliceToken)
		if route&0x80 != 0 {
			r.Header.Set("Authorization", "Bearer "+serviceToken)
		}
		rec := e.serve(r)
		if refused(rec.Code) && (e.authz.calls() != 0 || m.calls.Load() != 0) {
			t.Fatalf("%s %s %q: status %d, yet the authorizer was asked %d times and the manager %d",
				rt.method, rt.target, body, rec.Code, e.authz.calls(), m.calls.Load())
		}
	})
}

// refused are the statuses of input the gateway could not read.
func refused(code int) bool {
	return code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge || code == http.StatusUnsupportedMediaType
}

// bodySeeds are one hostile body of each kind; every route gets each.
var bodySeeds = []string{
	`{"permission":"read","company":"acme"}`,
	`{"checks":[{"permission":"read","company":"acme"},{"permission":"read","company":"globex"}],"subject":"bob"}`,
	`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"},"context":{"consistency_token":"0/16B3748"}}`,
	`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"},"evaluations":[{},{"resource":{"type":"company","id":"globex"}}],"options":{"evaluations_semantic":"deny_on_first_deny"}}`,
	`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"},"page":{"limit":1000000000,"token":"eyJzIjoieCIsImEiOiJ5IiwibCI6MX0"}}`,
	`{"subject":{"type":"user","id":"alice"},"resource":{"type":"company","id":"acme"},"page":{"limit":-1}}`,
	`{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"}}`,
	`{"name":"Acme","id":"..%2F","parent_id":"a#b"}`,
	`{"name":"a\u0000b","parent_id":null}`,
	`{"role":"owner","Role":"viewer"}`,
	`{"permission":"read","company":"` + strings.Repeat("x", authz.MaxIDBytes+1) + `"}`,
	`{"permission":"read","company":"..%2Facme"}`,
	`{"permission":"read","company":"acme#globex"}`,
	`{"permission":"read","company":"acme\u0000"}`,
	"{\"permission\":\"read\",\"company\":\"acme\xff\"}",
	"{\"permission\":\"read\",\"company\":\"acme\x00\"}",
	`{"permission":"read","company":"acme","consistency_token":"FFFFFFFF/FFFFFFFF"}`,
	`{"permission":"read","company":"acme","consistency_token":"123456789/0"}`,
	`{"permission":"read","company":"acme","explain":true}`,
	`{"permission":"read","company":"acme","subject":null}`,
	`{"permission":"read","permission":"delete","company":"acme"}`,
	`{"checks":[` + strings.TrimSuffix(strings.Repeat(`{"permission":"read","company":"acme"},`, 6), ",") + `]}`,
	`{"checks":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	`{"subject":{"type":"user","id":"alice","properties":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat("}", 40) + `}}`,
	`{"evaluations":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`,
	`{"permission":"read","company":"acme"} {}`,
	`{"permission":"read","company":"acme",}`,
	`{"permission":"read","company":"acme","\u017fubject":"bob"}`,
	`{"permission":1e400,"company":"acme"}`,
	`null`, `[]`, `""`, ``, `{`, "\xef\xbb\xbf{}",
	`{"permission":"read","company":"` + strings.Repeat("x", 5000) + `"}`,
}

// FuzzListQuery: any query string on GET /v1/companies, as alice or as a
// caller whose platform role lists every company. A query is taken only
// when every parameter is known and given once, the limit is within the
// bounds and a cursor is one of this listing's; then the Authorizer gets
// exactly that limit and position, and the page's next_cursor resumes it.
func FuzzListQuery(f *testing.F) {
	for _, q := range []string{"", "limit=1000000000", "limit=-1", "limit=0", "limit=50", "limit=51", "limit=1&limit=2",
		"permission=read&permission=delete", "permission=read&Permission=delete", "limit=%31", "limit=+5", "limit=0x10", "limit=1e3",
		"limit=99999999999999999999", "limit= 5", "LIMIT=5", "limit=5;cursor=x", "%zz", "cursor=%21%21%21", "cursor=" + cursorFor("read", "c1"),
		"permission=update&cursor=" + cursorFor("read", "c1"), "cursor=" + cursorFor("read", ""), "cursor=" + cursorFor("read", "c1") + "&cursor=x",
		"cursor=" + strings.Repeat("A", 5000), "permission=manage_members", "permission=read%00", "permission=", "&&&", "=", "limit"} {
		f.Add(q, false)
		f.Add(q, true)
	}
	f.Fuzz(func(t *testing.T, query string, platform bool) {
		e, _ := newFuzzEnv(t)
		token, user := aliceToken, "alice"
		if platform {
			token, user = supportToken, "sam"
		}
		get := func(query string) *httptest.ResponseRecorder {
			r := httptest.NewRequest("GET", "/v1/companies", nil)
			r.URL.RawQuery = query
			r.Header.Set("Authorization", "Bearer "+token)
			return e.serve(r)
		}
		rec := get(query)
		if rec.Code == http.StatusBadRequest {
			if e.authz.calls() != 0 {
				t.Fatalf("query %q refused, yet the authorizer was asked", query)
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("query %q: status %d", query, rec.Code)
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("took the malformed query %q", query)
		}
		for name, values := range q {
			if !slices.Contains([]string{"permission", "limit", "cursor"}, name) || len(values) != 1 {
				t.Fatalf("took the query %q: parameter %q, %d times", query, name, len(values))
			}
		}
		limit := fuzzConfig.DefaultPageSize
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > fuzzConfig.MaxPageSize {
				t.Fatalf("took the limit %q", v)
			}
		}
		page := decode[struct {
			NextCursor string `json:"next_cursor"`
		}](t, rec)
		listsAll := platform && (q.Get("permission") == "" || q.Get("permission") == "read")
		if listsAll {
			if e.authz.calls() != 0 {
				t.Fatalf("a listing of every company asked the authorizer")
			}
		} else {
			if len(e.authz.lookups) != 1 || e.authz.lookups[0].limit != limit || e.authz.lookups[0].user != user ||
				(e.authz.lookups[0].cursor == "") != (q.Get("cursor") == "") {
				t.Fatalf("query %q: lookups %+v", query, e.authz.lookups)
			}
		}
		if page.NextCursor != "" {
			next := url.Values{"cursor": {page.NextCursor}, "limit": {strconv.Itoa(limit)}}
			if p := q.Get("permission"); p != "" {
				next.Set("permission", p)
			}
			if rec := get(next.Encode()); rec.Code != http.StatusOK {
				t.Fatalf("the next page of %q: status %d: %s", query, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzConsistencyToken: any token, in the body, the header, both alike or
// both different. It is taken as it is (a ZedToken), waited for (a WAL
// position authz.ParsePosition reads, and the sync has reached), or refused
// with a 400; never a 5xx, and a refused one reaches no backend.
func FuzzConsistencyToken(f *testing.F) {
	for _, s := range []string{"", "Gh8KEzE3OTU2MDg0Mjg5NDUyOTYwODgSCGU1MjVmZDY5", "0/16B3748", "FFFFFFFF/FFFFFFFF", "123456789/0",
		"0/", "/", "0/1/2", "zed/abc", "-1/0", "0/1\x00", "0/1\r\nX-Injected: 1", "\xff\xfe", strings.Repeat("z", 1025), "０/１",
		"0/16B3748@1", "0/1@", "0/1@0", "0/1@2@3", "zed@1"} {
		for mode := range uint8(4) {
			f.Add(s, mode)
		}
	}
	f.Fuzz(func(t *testing.T, token string, mode uint8) {
		e, _ := newFuzzEnv(t)
		inBody, inHeader := token, ""
		switch mode % 4 {
		case 1:
			inBody, inHeader = "", token
		case 2:
			inHeader = token
		case 3:
			inBody, inHeader = token+"x", token
		}
		bodyToken, _ := json.Marshal(inBody)
		body := `{"permission":"read","company":"acme","consistency_token":` + string(bodyToken) + `}`
		var decoded string
		_ = json.Unmarshal(bodyToken, &decoded) // what the gateway reads: invalid UTF-8 turns into U+FFFD
		r := httptest.NewRequest("POST", "/v1/check", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+aliceToken)
		if inHeader != "" {
			r.Header.Set("Consistency-Token", inHeader)
		}
		rec := e.serve(r)
		effective := decoded
		if effective == "" {
			effective = inHeader
		}
		differ := decoded != "" && inHeader != "" && decoded != inHeader
		pos, posErr := authz.ParsePosition(effective)
		positionShaped := strings.Contains(effective, "@") ||
			strings.Count(effective, "/") == 1 && strings.Trim(effective, "0123456789abcdefABCDEF/") == ""
		wantRefused := differ || len(effective) > 1024 || positionShaped && (posErr != nil || pos.LSN > appliedUpTo)
		if rec.Code == http.StatusBadRequest {
			if !wantRefused {
				t.Fatalf("token %q (header %q): refused: %s", decoded, inHeader, rec.Body)
			}
			if e.authz.calls() != 0 {
				t.Fatal("a refused token reached the authorizer")
			}
			return
		}
		if rec.Code != http.StatusOK || wantRefused {
			t.Fatalf("token %q (header %q): status %d, refusal expected %v: %s", decoded, inHeader, rec.Code, wantRefused, rec.Body)
		}
		want := effective
		if posErr == nil {
			want = "zed-applied"
		}
		if len(e.authz.consistency) != 1 || e.authz.consistency[0].AtLeastAsFresh != want {
			t.Fatalf("token %q (header %q): the authorizer read at %+v, want %q", decoded, inHeader, e.authz.consistency, want)
		}
	})
}

// FuzzPageCursor: any string as a list cursor, and as the page token of
// each AuthZEN search. A page, or a 400; a position is only ever one in
// the caller's own listing, and a refused one reaches no backend.
func FuzzPageCursor(f *testing.F) {
	for _, s := range []string{"", "!!", "c1", cursorFor("read", "c1"), cursorFor("read", ""), cursorFor("delete", "c1"),
		cursorFor("read", `c1","all":true,"x":"`), strings.Repeat("A", 5000), "eyJzIjoieCIsImEiOiJ5IiwibCI6MX0", "eyJhIjoieCIsImwiOjF9",
		"eyJwZXJtaXNzaW9uIjoicmVhZCIsImFsbCI6dHJ1ZSwiY3Vyc29yIjoiYWNtZSJ9", "\x00", "\xff", "%2F..%2F"} {
		f.Add(s)
	}
	searches := []struct{ target, body string }{
		{"/access/v1/search/resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"},"page":{"token":%s}}`},
		{"/access/v1/search/action", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"company","id":"acme"},"page":{"token":%s}}`},
		{"/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"},"page":{"token":%s}}`},
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		e, _ := newFuzzEnv(t)
		r := httptest.NewRequest("GET", "/v1/companies", nil)
		r.URL.RawQuery = url.Values{"cursor": {cursor}}.Encode()
		r.Header.Set("Authorization", "Bearer "+aliceToken)
		rec := e.serve(r)
		switch {
		case rec.Code == http.StatusBadRequest && len(e.authz.lookups) == 0:
		case rec.Code == http.StatusOK && len(e.authz.lookups) == 1 && e.authz.lookups[0].user == "alice" && (cursor == "") == (e.authz.lookups[0].cursor == ""):
		default:
			t.Fatalf("cursor %q: status %d, lookups %+v", cursor, rec.Code, e.authz.lookups)
		}
		token, _ := json.Marshal(cursor)
		for _, s := range searches {
			e, _ := newFuzzEnv(t)
			r := httptest.NewRequest("POST", s.target, strings.NewReader(fmt.Sprintf(s.body, token)))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+serviceToken)
			rec := e.serve(r)
			// A token too long for the body is a 413.
			if rec.Code != http.StatusOK && !refused(rec.Code) {
				t.Fatalf("%s token %q: status %d", s.target, cursor, rec.Code)
			}
			if refused(rec.Code) && e.authz.calls() != 0 {
				t.Fatalf("%s token %q: refused, yet the authorizer was asked", s.target, cursor)
			}
			for _, l := range e.authz.lookups {
				if l.user != "alice" {
					t.Fatalf("%s token %q: a lookup for %q", s.target, cursor, l.user)
				}
			}
		}
	})
}
