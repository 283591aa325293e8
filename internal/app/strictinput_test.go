package app_test

import (
	"net/http"
	"strings"
	"testing"
)

// Strict input and error statuses as a client meets them: raw bodies over
// HTTP to `tenantgate serve` on real PostgreSQL and embedded SpiceDB.

// postgresWording is text of PostgreSQL's own that no answer may carry.
var postgresWording = []string{"invalid byte sequence", "SQLSTATE", "violates", "constraint", "relation", "column", "ERROR:"}

func wantNoPostgresWording(t *testing.T, body []byte) {
	t.Helper()
	for _, w := range postgresWording {
		if strings.Contains(string(body), w) {
			t.Errorf("answer carries PostgreSQL's wording %q: %s", w, body)
		}
	}
}

// TestStrictInputEndToEnd: a null subject counts as a subject; repeated
// keys and keys in another case are refused on every JSON route; names
// with control or bidirectional formatting characters and the IDs "." and
// ".." are refused in the gateway's words. Nothing refused is written.
func TestStrictInputEndToEnd(t *testing.T) {
	s := startEmbeddedStack(t,
		`insert into companies (id, name) values ('acme', 'Acme')`,
		`insert into company_memberships (user_id, company_id, role) values ('alice', 'acme', 'owner'), ('bob', 'acme', 'viewer')`)
	alice := s.token("alice")
	member := memberPath("acme", "bob")
	tests := []struct {
		name, method, path, bearer, body string
		want                             int
		wantDetail                       string
	}{
		{"user token, null subject", "POST", "/v1/check", alice, `{"permission":"read","company":"acme","subject":null}`, 403, "subject"},
		{"user token, null subject in bulk", "POST", "/v1/check/bulk", alice,
			`{"checks":[{"permission":"read","company":"acme"}],"subject":null}`, 403, "subject"},
		{"service token, null subject", "POST", "/v1/check", serviceToken, `{"permission":"read","company":"acme","subject":null}`, 400, "subject"},
		{"service token, null subject in bulk", "POST", "/v1/check/bulk", serviceToken,
			`{"checks":[{"permission":"read","company":"acme"}],"subject":null}`, 400, "subject"},

		{"check, repeated key", "POST", "/v1/check", alice, `{"permission":"read","permission":"delete","company":"acme"}`, 400, `"permission"`},
		{"check, keys differing in case", "POST", "/v1/check", alice, `{"permission":"read","Permission":"delete","company":"acme"}`, 400, `"Permission"`},
		{"check, key in another case", "POST", "/v1/check", alice, `{"PERMISSION":"read","company":"acme"}`, 400, `"PERMISSION"`},
		{"bulk item, repeated key", "POST", "/v1/check/bulk", alice,
			`{"checks":[{"permission":"read","company":"acme","company":"other"}]}`, 400, `"checks[0].company"`},
		{"bulk item, keys differing in case", "POST", "/v1/check/bulk", alice,
			`{"checks":[{"permission":"read","company":"acme","Company":"other"}]}`, 400, `"checks[0].Company"`},

		{"put member, repeated key", "PUT", member, alice, `{"role":"viewer","role":"owner"}`, 400, `"role"`},
		{"put member, keys differing in case", "PUT", member, alice, `{"role":"viewer","Role":"owner"}`, 400, `"Role"`},
		{"put member, key in another case", "PUT", member, alice, `{"ROLE":"owner"}`, 400, `"ROLE"`},
		{"create company, repeated key", "POST", "/v1/companies", alice, `{"name":"One","name":"Two"}`, 400, `"name"`},
		{"create company, keys differing in case", "POST", "/v1/companies", alice, `{"name":"One","Name":"Two"}`, 400, `"Name"`},
		{"create company, key in another case", "POST", "/v1/companies", alice, `{"NAME":"One"}`, 400, `"NAME"`},
		{"patch company, repeated key", "PATCH", "/v1/companies/acme", alice, `{"name":"One","name":"Two"}`, 400, `"name"`},
		{"patch company, keys differing in case", "PATCH", "/v1/companies/acme", alice, `{"name":"One","NAME":"Two"}`, 400, `"NAME"`},
		{"patch company, key in another case", "PATCH", "/v1/companies/acme", alice, `{"Parent_ID":null}`, 400, `"Parent_ID"`},

		{"create company, NUL in name", "POST", "/v1/companies", alice, `{"name":"a\u0000b"}`, 400, "control character"},
		{"create company, right-to-left override in name", "POST", "/v1/companies", alice, `{"name":"a\u202eb"}`, 400, "bidirectional"},
		{"create company, line break in name", "POST", "/v1/companies", alice, `{"name":"a\nb"}`, 400, "control character"},
		{"rename, NUL in name", "PATCH", "/v1/companies/acme", alice, `{"name":"\u0000"}`, 400, "control character"},
		{"rename, right-to-left override in name", "PATCH", "/v1/companies/acme", alice, `{"name":"Acme\u202e"}`, 400, "bidirectional"},
		{"create company, id .", "POST", "/v1/companies", alice, `{"name":"Dot","id":"."}`, 400, `"."`},
		{"create company, id ..", "POST", "/v1/companies", alice, `{"name":"Dots","id":".."}`, 400, `".."`},
		{"create company, parent ..", "POST", "/v1/companies", alice, `{"name":"Dots","parent_id":".."}`, 400, `".."`},
	}
	before := s.dumpRows(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := s.mustSend(t, tt.method, tt.path, tt.bearer, []byte(tt.body), nil)
			doc := problemOf(t, a, tt.want)
			if detail, _ := doc["detail"].(string); !strings.Contains(detail, tt.wantDetail) {
				t.Errorf("detail %q lacks %q", detail, tt.wantDetail)
			}
			wantNoPostgresWording(t, a.body)
			if granted(string(a.body)) {
				t.Errorf("refusal carries an answer: %s", a.body)
			}
			if after := s.dumpRows(t); after != before {
				t.Fatalf("a refused request changed the rows:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// The same requests written plainly do go through: the refusals above
	// are about the keys and values, not the routes.
	t.Run("plain bodies are accepted", func(t *testing.T) {
		if code := s.do("POST", "/v1/check", serviceToken, map[string]string{"permission": "read", "company": "acme", "subject": "bob"}, nil); code != http.StatusOK {
			t.Errorf("service check: status %d", code)
		}
		if a := s.mustSend(t, "PATCH", "/v1/companies/acme", alice, []byte(`{"name":"Acme Renamed"}`), nil); a.status != http.StatusOK {
			t.Errorf("rename: status %d %s", a.status, a.body)
		}
		if a := s.mustSend(t, "POST", "/v1/companies", alice, []byte(`{"name":"Dot com","id":".com"}`), nil); a.status != http.StatusCreated {
			t.Errorf("create .com: status %d %s", a.status, a.body)
		}
	})
}

// TestUnexpectedErrorIs500EndToEnd: a failure of no known kind (here a
// column the gateway reads is gone) is a 500 without Retry-After, never an
// answer and never PostgreSQL's text; SpiceDB down stays a 503
// (TestChecksFailClosedWhenSpiceDBCannotAnswer).
func TestUnexpectedErrorIs500EndToEnd(t *testing.T) {
	s := startEmbeddedStack(t,
		`insert into companies (id, name) values ('acme', 'Acme')`,
		`insert into company_memberships (user_id, company_id, role) values ('alice', 'acme', 'owner')`)
	alice := s.token("alice")
	if got := s.companies("alice", "read", 10); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("alice reads %v before the schema breaks, want [acme]", got)
	}
	s.exec(`alter table companies rename column name to name2`)
	// Put back for the stack's orderly stop.
	t.Cleanup(func() { s.exec(`alter table companies rename column name2 to name`) })

	a := s.mustSend(t, "GET", "/v1/companies?permission=read", alice, nil, nil)
	doc := problemOf(t, a, http.StatusInternalServerError)
	if _, ok := doc["detail"]; ok {
		t.Errorf("a 500 carries a detail: %s", a.body)
	}
	if ra := a.header.Get("Retry-After"); ra != "" {
		t.Errorf("a 500 invites a retry: Retry-After %q", ra)
	}
	wantNoPostgresWording(t, a.body)
	if granted(string(a.body)) || strings.Contains(string(a.body), "companies") {
		t.Errorf("a failed listing carries an answer: %s", a.body)
	}
}
