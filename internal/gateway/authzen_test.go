package gateway_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// The AuthZEN routes' own rules, over fakes; internal/app's conformance
// suite runs the standard's protocol checks against real stacks.

type azDecision struct {
	Decision bool `json:"decision"`
	Context  *struct {
		ConsistencyToken string `json:"consistency_token"`
		Reason           string `json:"reason"`
		Error            *struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"context"`
}

func allowAlice(e *env) {
	e.authz.allow[authz.CheckRequest{User: "alice", Permission: authz.PermRead, Company: "acme"}] = true
}

// evaluation is an AuthZEN evaluation body about subject, action and
// company, with extra top-level members appended.
func evaluation(subject, action, company string, extra ...string) string {
	members := append([]string{
		fmt.Sprintf(`"subject":{"type":"user","id":%q}`, subject),
		fmt.Sprintf(`"action":{"name":%q}`, action),
		fmt.Sprintf(`"resource":{"type":"company","id":%q}`, company),
	}, extra...)
	return "{" + strings.Join(members, ",") + "}"
}

func TestAuthZENEvaluationInput(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		opts   []reqOpt
		status int
		// decision and reason are checked for a 200.
		decision bool
		reason   string
		detail   string
	}{
		{name: "allowed", body: evaluation("alice", "read", "acme"), status: 200, decision: true},
		{name: "denied is a 200", body: evaluation("alice", "delete", "acme"), status: 200},
		{name: "unknown fields are ignored at every level",
			body: `{"subject":{"type":"user","id":"alice","x":1,"properties":{"department":"Sales"}},
				"action":{"name":"read","y":[1,{"z":null}]},"resource":{"type":"company","id":"acme","properties":{}},
				"context":{"time":"1985-10-26T01:22-07:00","nested":{"a":"b"}},"futureField":{"nested":true}}`,
			status: 200, decision: true},
		{name: "a key differing from a known one only in case is refused",
			body:   `{"Subject":{"type":"user","id":"bob"},"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"}}`,
			status: 400, detail: "case-sensitive"},
		{name: "a repeated key is refused", body: `{"subject":{"type":"user","id":"alice","id":"bob"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"}}`,
			status: 400, detail: "more than once"},
		{name: "properties must be an object", body: evaluation("alice", "read", "acme")[:len(evaluation("alice", "read", "acme"))-1] + `,"subject":{"type":"user","id":"alice","properties":"x"}}`,
			status: 400},
		{name: "a mistyped consistency token is refused", body: evaluation("alice", "read", "acme", `"context":{"consistency_token":5}`), status: 400},
		{name: "another subject type is a deny with a reason", body: `{"subject":{"type":"group","id":"g"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"}}`,
			status: 200, reason: `unknown subject type "group"`},
		{name: "another resource type is a deny with a reason", body: `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"acme"}}`,
			status: 200, reason: `unknown resource type "record"`},
		{name: "an unknown action is a deny with a reason", body: evaluation("alice", "write", "acme"), status: 200, reason: `unknown action "write"`},
		{name: "a malformed company id is refused", body: evaluation("alice", "read", "a\x01b"), status: 400},
		{name: "a user token asks only about itself", body: evaluation("bob", "read", "acme"), status: 403},
		{name: "the service token asks about anyone", body: evaluation("alice", "read", "acme"), opts: []reqOpt{as(serviceToken)}, status: 200, decision: true},
		{name: "a wrong media type is a 400, as the standard's certification asks", body: evaluation("alice", "read", "acme"),
			opts: []reqOpt{header("Content-Type", "text/plain")}, status: 400},
		{name: "no token", body: evaluation("alice", "read", "acme"), opts: []reqOpt{as("")}, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := buildEnv(t, gateway.Config{ServiceToken: serviceToken}, nil, allowAlice)
			rec := e.do("POST", "/access/v1/evaluation", tt.body, tt.opts...)
			wantStatus(t, rec, tt.status)
			if tt.status != 200 {
				if !strings.Contains(problemDetail(t, rec), tt.detail) {
					t.Errorf("detail %q lacks %q", problemDetail(t, rec), tt.detail)
				}
				return
			}
			d := decode[azDecision](t, rec)
			if d.Decision != tt.decision {
				t.Errorf("decision = %v, want %v", d.Decision, tt.decision)
			}
			if tt.reason != "" && (d.Context == nil || !strings.Contains(d.Context.Reason, tt.reason)) {
				t.Errorf("context %+v lacks reason %q", d.Context, tt.reason)
			}
			if tt.reason != "" && e.authz.calls() != 0 {
				t.Errorf("a question outside the model reached the authorizer")
			}
		})
	}
}

func TestAuthZENFailsClosed(t *testing.T) {
	boxcar := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[{"resource":{"type":"company","id":"acme"}}]}`
	tests := []struct{ route, body string }{
		{"/access/v1/evaluation", evaluation("alice", "read", "acme")},
		{"/access/v1/evaluations", boxcar},
		{"/access/v1/evaluations", strings.Replace(boxcar, `"evaluations"`, `"options":{"evaluations_semantic":"permit_on_first_permit"},"evaluations"`, 1)},
		{"/access/v1/search/action", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"company","id":"acme"}}`},
		{"/access/v1/search/resource", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			e := buildEnv(t, gateway.Config{}, nil, func(e *env) {
				allowAlice(e)
				// The fake claims "allowed" next to its error.
				e.authz.err = fmt.Errorf("spicedb: %w", authz.ErrUnavailable)
			})
			wantStatus(t, e.do("POST", tt.route, tt.body), http.StatusServiceUnavailable)
		})
	}
}

func TestAuthZENEvaluations(t *testing.T) {
	items := `[{"resource":{"type":"company","id":"acme"}},{"resource":{"type":"company","id":"globex"}},{},{"resource":{"type":"company","id":"acme"},"action":{"name":"delete"}}]`
	tests := []struct {
		name     string
		semantic string
		// want is each returned decision: "+" allow, "-" deny, "e" an
		// item error, "s" the deny or allow that stopped the evaluation.
		want string
	}{
		{"execute_all is the default", "", "+-e-"},
		{"execute_all", `,"options":{"evaluations_semantic":"execute_all"}`, "+-e-"},
		{"deny_on_first_deny stops at the first deny", `,"options":{"evaluations_semantic":"deny_on_first_deny"}`, "+s"},
		{"permit_on_first_permit stops at the first permit", `,"options":{"evaluations_semantic":"permit_on_first_permit","other":1}`, "s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := buildEnv(t, gateway.Config{}, nil, allowAlice)
			body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":` + items + tt.semantic + `}`
			rec := e.do("POST", "/access/v1/evaluations", body)
			wantStatus(t, rec, 200)
			resp := decode[struct {
				Decision    *bool        `json:"decision"`
				Evaluations []azDecision `json:"evaluations"`
			}](t, rec)
			if resp.Decision != nil {
				t.Error("a boxcar's answer carries a top-level decision")
			}
			var got strings.Builder
			for _, d := range resp.Evaluations {
				switch {
				case d.Context != nil && d.Context.Error != nil:
					got.WriteString("e")
				case d.Context != nil && strings.HasSuffix(d.Context.Reason, "_first_deny") || d.Context != nil && strings.HasSuffix(d.Context.Reason, "_first_permit"):
					got.WriteString("s")
				case d.Decision:
					got.WriteString("+")
				default:
					got.WriteString("-")
				}
			}
			if got.String() != tt.want {
				t.Errorf("decisions %q, want %q: %s", got.String(), tt.want, rec.Body)
			}
		})
	}

	t.Run("an item's error says why, without failing the others", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{}, nil, allowAlice)
		body := `{"action":{"name":"read"},"resource":{"type":"company","id":"acme"},"evaluations":[
			{"subject":{"type":"user","id":"alice"}},
			{"subject":{"type":"user","id":"bob"}},
			{"subject":"alice"},
			{"subject":{"type":"user","id":"alice"},"context":{"consistency_token":"other"}},
			{"subject":{"type":"user","id":"alice"},"context":{"time":"now"}}]}`
		resp := decode[struct {
			Evaluations []azDecision `json:"evaluations"`
		}](t, e.do("POST", "/access/v1/evaluations", body))
		want := []int{0, 403, 400, 400, 0}
		if len(resp.Evaluations) != len(want) {
			t.Fatalf("%d decisions, want %d", len(resp.Evaluations), len(want))
		}
		for i, d := range resp.Evaluations {
			status := 0
			if d.Context != nil && d.Context.Error != nil {
				status = d.Context.Error.Status
				if d.Context.Error.Message == "" || d.Decision {
					t.Errorf("item %d: %+v", i, d)
				}
			}
			if status != want[i] {
				t.Errorf("item %d: error status %d, want %d", i, status, want[i])
			}
		}
		if !resp.Evaluations[0].Decision {
			t.Error("the valid item was not answered")
		}
	})

	t.Run("without evaluations it is a single evaluation", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{}, nil, allowAlice)
		for _, extra := range []string{"", `"evaluations":[]`, `"evaluations":null`} {
			body := evaluation("alice", "read", "acme", extra)
			if extra == "" {
				body = evaluation("alice", "read", "acme")
			}
			if d := decode[azDecision](t, e.do("POST", "/access/v1/evaluations", body)); !d.Decision {
				t.Errorf("%s: decision false", extra)
			}
		}
	})

	t.Run("too many items is a 400", func(t *testing.T) {
		e := newEnv(t, gateway.Config{MaxBulkChecks: 2})
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[{},{},{}]}`
		wantStatus(t, e.do("POST", "/access/v1/evaluations", body), 400)
	})

	t.Run("an unknown semantic is a 400", func(t *testing.T) {
		e := newEnv(t, gateway.Config{})
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[{}],"options":{"evaluations_semantic":"any"}}`
		wantStatus(t, e.do("POST", "/access/v1/evaluations", body), 400)
	})
}

func TestAuthZENConfiguration(t *testing.T) {
	tests := []struct {
		name, external, host, want string
		tls                        bool
	}{
		{name: "from the request", host: "pdp.local:8080", want: "http://pdp.local:8080"},
		{name: "configured external URL wins", external: "https://pdp.example.com/authz/", host: "10.0.0.7:8080", want: "https://pdp.example.com/authz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{ExternalURL: tt.external})
			// A forwarded host is anybody's to send: it must not become the
			// PDP's identifier.
			rec := e.do("GET", "/.well-known/authzen-configuration", "", as(""),
				func(r *http.Request) { r.Host = tt.host }, header("X-Forwarded-Host", "evil.example"))
			wantStatus(t, rec, 200)
			doc := decode[map[string]string](t, rec)
			if doc["policy_decision_point"] != tt.want || doc["access_evaluation_endpoint"] != tt.want+"/access/v1/evaluation" ||
				doc["search_resource_endpoint"] != tt.want+"/access/v1/search/resource" {
				t.Errorf("document %v, want endpoints under %s", doc, tt.want)
			}
			if _, ok := doc["search_subject_endpoint"]; ok {
				t.Error("search_subject_endpoint advertised by a gateway without a user lookup")
			}
		})
	}
	t.Run("an external URL with a query is refused", func(t *testing.T) {
		if _, err := gateway.New(gateway.Config{ExternalURL: "https://pdp.example.com/?a=b"}, gateway.Deps{
			Authn: &fakeAuthn{}, Authz: &fakeAuthz{}, Companies: &fakeCompanies{},
		}); err == nil {
			t.Error("accepted")
		}
	})
}

func TestAuthZENSearchPaging(t *testing.T) {
	e := buildEnv(t, gateway.Config{}, nil, func(e *env) {
		for _, id := range []string{"a", "b", "c"} {
			e.companies.byID[id] = authz.Company{ID: id, Name: strings.ToUpper(id)}
		}
		e.authz.pages[""] = lookupPage{ids: []string{"a", "b"}, next: "cur-b"}
		e.authz.pages["cur-b"] = lookupPage{ids: []string{"c"}}
	})
	search := func(page string) *struct {
		Page struct {
			NextToken string `json:"next_token"`
			Count     int    `json:"count"`
		} `json:"page"`
		Results []struct{ Type, ID string } `json:"results"`
	} {
		t.Helper()
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":"ignored"},"page":` + page + `}`
		rec := e.do("POST", "/access/v1/search/resource", body)
		wantStatus(t, rec, 200)
		r := decode[struct {
			Page struct {
				NextToken string `json:"next_token"`
				Count     int    `json:"count"`
			} `json:"page"`
			Results []struct{ Type, ID string } `json:"results"`
		}](t, rec)
		return &r
	}
	first := search(`{"limit":2}`)
	if first.Page.Count != 2 || first.Page.NextToken == "" || first.Results[0].Type != "company" {
		t.Fatalf("first page %+v", first)
	}
	// The standard's examples send the token alone: the limit carries over.
	second := search(fmt.Sprintf(`{"token":%q}`, first.Page.NextToken))
	if second.Page.Count != 1 || second.Page.NextToken != "" || second.Results[0].ID != "c" {
		t.Errorf("second page %+v", second)
	}
	t.Run("a token with a changed request is refused", func(t *testing.T) {
		body := fmt.Sprintf(`{"subject":{"type":"user","id":"alice"},"action":{"name":"update"},"resource":{"type":"company"},"page":{"limit":2,"token":%q}}`, first.Page.NextToken)
		wantStatus(t, e.do("POST", "/access/v1/search/resource", body), 400)
	})
	t.Run("a token with another limit is refused", func(t *testing.T) {
		body := fmt.Sprintf(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"},"page":{"limit":3,"token":%q}}`, first.Page.NextToken)
		wantStatus(t, e.do("POST", "/access/v1/search/resource", body), 400)
	})
	t.Run("a negative limit is refused", func(t *testing.T) {
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"},"page":{"limit":-1}}`
		wantStatus(t, e.do("POST", "/access/v1/search/resource", body), 400)
	})
	t.Run("a forged token is refused", func(t *testing.T) {
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company"},"page":{"token":"!!"}}`
		wantStatus(t, e.do("POST", "/access/v1/search/resource", body), 400)
	})
}

// TestPlatformRolesAtTheEdge: a platform role from the token's groups adds
// to the authorizer's answers for companies that exist, only for the
// caller itself.
func TestPlatformRolesAtTheEdge(t *testing.T) {
	roles := authz.PlatformRoles{"support": authz.RoleViewer}
	setup := func(e *env) {
		for _, id := range []string{"acme", "globex", "initech"} {
			e.companies.byID[id] = authz.Company{ID: id, Name: id}
		}
	}
	e := buildEnv(t, gateway.Config{PlatformRoles: roles, ServiceToken: serviceToken}, nil, setup)
	tests := []struct {
		name, token, body string
		want              bool
	}{
		{"read on an existing company", supportToken, `{"permission":"read","company":"globex"}`, true},
		{"not beyond the role", supportToken, `{"permission":"update","company":"globex"}`, false},
		{"not on a company that does not exist", supportToken, `{"permission":"read","company":"nowhere"}`, false},
		{"not for the service, which has no token of the subject", serviceToken, `{"subject":"sam","permission":"read","company":"globex"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do("POST", "/v1/check", tt.body, as(tt.token))
			wantStatus(t, rec, 200)
			if got := decode[struct{ Allowed bool }](t, rec).Allowed; got != tt.want {
				t.Errorf("allowed = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("a list of every company, paged in ID order", func(t *testing.T) {
		var ids []string
		cursor := ""
		for range 5 {
			rec := e.do("GET", "/v1/companies?limit=2&cursor="+cursor, "", as(supportToken))
			wantStatus(t, rec, 200)
			page := decode[struct {
				Companies  []struct{ ID string } `json:"companies"`
				NextCursor string                `json:"next_cursor"`
			}](t, rec)
			for _, c := range page.Companies {
				ids = append(ids, c.ID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if strings.Join(ids, ",") != "acme,globex,initech" {
			t.Errorf("listed %v", ids)
		}
	})
	t.Run("a listing's cursor does not carry over to another platform role", func(t *testing.T) {
		rec := e.do("GET", "/v1/companies?limit=1", "", as(supportToken))
		next := decode[struct {
			NextCursor string `json:"next_cursor"`
		}](t, rec).NextCursor
		wantStatus(t, e.do("GET", "/v1/companies?limit=1&cursor="+next, ""), 400)
	})
	t.Run("a failing company reader fails the check", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{PlatformRoles: roles}, nil, func(e *env) { e.companies.err = errors.New("postgres down") })
		wantStatus(t, e.do("POST", "/v1/check", `{"permission":"read","company":"globex"}`, as(supportToken)), 500)
	})
}

func TestExplainWithoutExplainer(t *testing.T) {
	e := buildEnv(t, gateway.Config{}, nil, allowAlice)
	wantStatus(t, e.do("POST", "/v1/check", `{"permission":"read","company":"acme","explain":true}`), http.StatusNotImplemented)
	wantStatus(t, e.do("GET", "/v1/companies/acme/permissions?explain=true", ""), http.StatusNotImplemented)
	wantStatus(t, e.do("GET", "/v1/companies/acme/permissions?explain=maybe", ""), http.StatusBadRequest)
}
