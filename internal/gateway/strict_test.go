package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// fakeManager accepts every management request and counts them, so a test
// can tell that a refused body reached no backend.
type fakeManager struct {
	calls atomic.Int32
}

func (f *fakeManager) SetMember(_ context.Context, _ authz.Actor, m authz.Membership) (authz.Membership, string, error) {
	f.calls.Add(1)
	return m, "0/1", nil
}

func (f *fakeManager) RemoveMember(context.Context, authz.Actor, string, string) (string, error) {
	f.calls.Add(1)
	return "0/1", nil
}

func (f *fakeManager) AcceptMembership(_ context.Context, actor authz.Actor, company string) (authz.Membership, string, error) {
	f.calls.Add(1)
	return authz.Membership{UserID: actor.ID, CompanyID: company, Role: authz.RoleViewer, Status: authz.StatusActive}, "0/1", nil
}

func (f *fakeManager) DeclineMembership(context.Context, authz.Actor, string) (string, error) {
	f.calls.Add(1)
	return "0/1", nil
}

func (f *fakeManager) CreateCompany(_ context.Context, _ authz.Actor, c authz.Company) (authz.Company, string, error) {
	f.calls.Add(1)
	if c.ID == "" {
		c.ID = "generated"
	}
	return c, "0/1", nil
}

func (f *fakeManager) UpdateCompany(_ context.Context, _ authz.Actor, id string, u authz.CompanyUpdate) (authz.Company, string, error) {
	f.calls.Add(1)
	co := authz.Company{ID: id, Name: "Acme"}
	if u.Name != nil {
		co.Name = *u.Name
	}
	return co, "0/1", nil
}

func (f *fakeManager) Members(context.Context, authz.Actor, string) ([]authz.Membership, error) {
	f.calls.Add(1)
	return nil, nil
}

func (f *fakeManager) Accesses(context.Context, authz.Actor, string) ([]authz.Access, error) {
	f.calls.Add(1)
	return nil, nil
}

func (f *fakeManager) Audit(context.Context, authz.Actor, string, int, int64) ([]authz.AuditEntry, error) {
	f.calls.Add(1)
	return nil, nil
}

type fakeUsers struct{}

func (fakeUsers) LookupUsers(context.Context, string, authz.Permission, authz.Consistency) ([]string, error) {
	return nil, nil
}

// newManageEnv builds a gateway with the management routes over fakes.
func newManageEnv(t *testing.T) (*env, *fakeManager) {
	t.Helper()
	m := &fakeManager{}
	e := buildEnv(t, gateway.Config{ServiceToken: serviceToken}, nil, func(e *env) {
		e.manager, e.users = m, fakeUsers{}
		e.routes = mustRoutes(t, testRoutes)
	})
	return e, m
}

// wantRefusedUntouched checks a 400 whose detail holds want and that no
// backend was asked.
func wantRefusedUntouched(t *testing.T, e *env, m *fakeManager, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	wantStatus(t, rec, http.StatusBadRequest)
	if detail := problemDetail(t, rec); !strings.Contains(detail, want) {
		t.Errorf("detail %q lacks %q", detail, want)
	}
	if e.authz.calls() != 0 || m.calls.Load() != 0 {
		t.Errorf("a refused body reached a backend (authorizer %d, manager %d calls)", e.authz.calls(), m.calls.Load())
	}
}

// TestBodyKeysAreExact: encoding/json matches keys without regard to case
// and keeps the last of repeated ones; every JSON route refuses both, so
// that no body can be read one way by the gateway and another by whatever
// logged or inspected it on the way.
func TestBodyKeysAreExact(t *testing.T) {
	const member = "/v1/companies/acme/members/bob"
	tests := []manageCase{
		{"check", "POST", "/v1/check", `{"permission":"read","company":"acme"}`, ""},
		{"check key spelt with an escape", "POST", "/v1/check", `{"perm\u0069ssion":"read","company":"acme"}`, ""},
		{"check repeated key", "POST", "/v1/check", `{"permission":"read","permission":"delete","company":"acme"}`,
			`key "permission" appears more than once`},
		{"check repeated key, once escaped", "POST", "/v1/check", `{"permission":"read","perm\u0069ssion":"delete","company":"acme"}`,
			`key "permission" appears more than once`},
		{"check keys differing in case", "POST", "/v1/check", `{"permission":"read","Permission":"delete","company":"acme"}`,
			`keys "permission" and "Permission" differ only in case`},
		{"check key in another case", "POST", "/v1/check", `{"PERMISSION":"read","company":"acme"}`,
			`key "PERMISSION" must be written "permission"`},
		// U+017F folds to "s": encoding/json would take it for "subject".
		{"check key folding to a field", "POST", "/v1/check", `{"permission":"read","company":"acme","\u017fubject":"bob"}`,
			`must be written "subject"`},
		{"check unknown key", "POST", "/v1/check", `{"permission":"read","company":"acme","user":"bob"}`, `unknown field "user"`},
		{"bulk", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"}]}`, ""},
		{"bulk repeated key in an item", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a","company":"b"}]}`,
			`key "checks[0].company" appears more than once`},
		{"bulk item key in another case", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"},{"permission":"read","Company":"b"}]}`,
			`key "checks[1].Company" must be written "checks[1].company"`},
		{"bulk repeated checks", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"}],"Checks":[]}`,
			`keys "checks" and "Checks" differ only in case`},
		{"bulk nested too deep", "POST", "/v1/check/bulk", `{"checks":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`,
			"deeper than 32 levels"},
		{"bulk nested too deep, unclosed", "POST", "/v1/check/bulk", `{"checks":` + strings.Repeat("[", 200_000), "deeper than 32 levels"},
		{"put member", "PUT", member, `{"role":"viewer"}`, ""},
		{"put member repeated key", "PUT", member, `{"role":"viewer","role":"owner"}`, `key "role" appears more than once`},
		{"put member keys differing in case", "PUT", member, `{"role":"viewer","Role":"owner"}`, `keys "role" and "Role" differ only in case`},
		{"put member key in another case", "PUT", member, `{"ROLE":"owner"}`, `key "ROLE" must be written "role"`},
		{"create company", "POST", "/v1/companies", `{"name":"Acme"}`, ""},
		{"create company repeated key", "POST", "/v1/companies", `{"name":"Acme","name":"Evil"}`, `key "name" appears more than once`},
		{"create company keys differing in case", "POST", "/v1/companies", `{"name":"Acme","parent_id":"a","Parent_ID":"b"}`,
			`keys "parent_id" and "Parent_ID" differ only in case`},
		{"create company key in another case", "POST", "/v1/companies", `{"Name":"Acme"}`, `key "Name" must be written "name"`},
		{"patch company", "PATCH", "/v1/companies/acme", `{"name":"Acme","parent_id":null}`, ""},
		{"patch company repeated key", "PATCH", "/v1/companies/acme", `{"parent_id":null,"parent_id":"evil"}`,
			`key "parent_id" appears more than once`},
		{"patch company keys differing in case", "PATCH", "/v1/companies/acme", `{"name":"Acme","NAME":"Evil"}`,
			`keys "name" and "NAME" differ only in case`},
		{"patch company key in another case", "PATCH", "/v1/companies/acme", `{"Parent_Id":null}`,
			`key "Parent_Id" must be written "parent_id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestCompanyNamesAndNewIDs: a name holds no control or bidirectional
// formatting characters, and no company is created as "." or "..", which
// no URL path could address.
func TestCompanyNamesAndNewIDs(t *testing.T) {
	tests := []manageCase{
		{"plain name", "POST", "/v1/companies", `{"name":"Zürich AG – Café"}`, ""},
		{"NUL in name", "POST", "/v1/companies", `{"name":"a\u0000b"}`, "control character"},
		{"line break in name", "POST", "/v1/companies", `{"name":"a\nlevel=ERROR"}`, "control character"},
		{"tab in name", "POST", "/v1/companies", `{"name":"a\tb"}`, "control character"},
		{"DEL in name", "POST", "/v1/companies", `{"name":"a\u007fb"}`, "control character"},
		{"right-to-left override in name", "POST", "/v1/companies", `{"name":"invoice\u202efdp.exe"}`, "bidirectional"},
		{"isolate in name", "POST", "/v1/companies", `{"name":"a\u2066b"}`, "bidirectional"},
		{"right-to-left mark in name", "POST", "/v1/companies", `{"name":"a\u200fb"}`, "bidirectional"},
		{"arabic letter mark in name", "POST", "/v1/companies", `{"name":"a\u061cb"}`, "bidirectional"},
		{"override in a rename", "PATCH", "/v1/companies/acme", `{"name":"a\u202ab"}`, "bidirectional"},
		{"NUL in a rename", "PATCH", "/v1/companies/acme", `{"name":"\u0000"}`, "control character"},
		{"dot id", "POST", "/v1/companies", `{"name":"A","id":"."}`, `"." cannot be used in a URL path`},
		{"dot-dot id", "POST", "/v1/companies", `{"name":"A","id":".."}`, `".." cannot be used in a URL path`},
		{"dot-dot parent", "POST", "/v1/companies", `{"name":"A","parent_id":".."}`, `".." cannot be used`},
		{"dots within an id", "POST", "/v1/companies", `{"name":"A","id":"...a.b"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
	t.Run("a check on . is a plain deny", func(t *testing.T) {
		e, _ := newManageEnv(t)
		rec := e.do("POST", "/v1/check", `{"permission":"read","company":"."}`)
		wantStatus(t, rec, http.StatusOK)
		if got := decode[map[string]any](t, rec); got["allowed"] != false {
			t.Errorf("body = %s", rec.Body)
		}
	})
}

// TestStatusOfErrorKinds: only unavailability is a 503 to retry; an error
// of no known kind is a 500, logged as an error. No answer carries a
// backend's own text, which the log keeps.
func TestStatusOfErrorKinds(t *testing.T) {
	const backendText = `ERROR: invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021)`
	backend := errors.New(backendText)
	tests := []struct {
		name       string
		err        error
		want       int
		wantDetail string
	}{
		{"no known kind", fmt.Errorf("check: %w", backend), http.StatusInternalServerError, ""},
		{"unavailable", fmt.Errorf("spicedb: check: %w: %w", authz.ErrUnavailable, backend), http.StatusServiceUnavailable, ""},
		{"hidden invalid", fmt.Errorf("check: %w", authz.Hide(authz.ErrInvalid, "a value the database cannot store", backend)),
			http.StatusBadRequest, "a value the database cannot store"},
		{"hidden conflict", authz.Hide(authz.ErrConflict, "conflicts with an existing row", backend),
			http.StatusConflict, "conflicts with an existing row"},
		{"hidden not found", authz.Hide(authz.ErrNotFound, "names a company that does not exist", backend), http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			e.authz.err = tt.err
			rec := e.do("POST", "/v1/check", `{"permission":"read","company":"acme"}`)
			wantStatus(t, rec, tt.want)
			if d := problemDetail(t, rec); d != tt.wantDetail && !strings.HasSuffix(d, ": "+tt.wantDetail) {
				t.Errorf("detail %q, want it to end in %q", d, tt.wantDetail)
			}
			if strings.Contains(rec.Body.String(), "SQLSTATE") || strings.Contains(rec.Body.String(), "byte sequence") {
				t.Errorf("answer carries the backend's text: %s", rec.Body)
			}
			wantRetry := map[int]string{http.StatusServiceUnavailable: "1"}[tt.want]
			if got := rec.Header().Get("Retry-After"); got != wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, wantRetry)
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "0x00 (SQLSTATE 22021)") {
				t.Errorf("the backend's text is not logged:\n%s", logs)
			}
			line := logLine(logs, `msg="request failed"`)
			if tt.want >= 500 && (!strings.Contains(line, "level=ERROR") || !strings.Contains(line, "request_id="+rec.Header().Get("X-Request-Id"))) {
				t.Errorf("failure not logged as an error with its request id: %s", line)
			}
		})
	}
}

// logLine returns the first line of logs that holds marker.
func logLine(logs, marker string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, marker) {
			return line
		}
	}
	return ""
}

// manageCase is one request to a gateway with a recording manager.
type manageCase struct {
	name, method, target, body string
	want                       string // detail for a 400; "" means accepted
}

func (tt manageCase) run(t *testing.T) {
	e, m := newManageEnv(t)
	rec := e.do(tt.method, tt.target, tt.body)
	if tt.want == "" {
		if rec.Code >= 300 {
			t.Fatalf("status = %d, want success; body %s", rec.Code, rec.Body)
		}
		return
	}
	wantRefusedUntouched(t, e, m, rec, tt.want)
}
