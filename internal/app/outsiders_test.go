package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

const outsiderSeed = `
INSERT INTO companies (id, name, parent_id) VALUES ('victim', 'Victim', NULL);
INSERT INTO companies (id, name, parent_id) VALUES ('victim-kid', 'Victim Kid', 'victim');
INSERT INTO company_memberships (user_id, company_id, role) VALUES
  ('boss', 'victim', 'owner'), ('staff', 'victim', 'admin');`

// TestOutsidersCannotLockOrFloodACompany: management requests about a
// company are refused to a caller without a role there before any lock is
// taken, so they cannot queue the company's own writes behind theirs; and
// their refusals are counted in a metric, not written into the company's
// audit trail.
func TestOutsidersCannotLockOrFloodACompany(t *testing.T) {
	s := startEmbeddedStack(t, outsiderSeed)
	mallory := s.token("mallory")
	refusedBefore, err := metric(s.baseURLs[0], "tenantgate_management_outsider_refusals_total")
	if err != nil {
		t.Fatal(err)
	}

	// The company's own writer is in the middle of a transaction: it holds
	// the locks a management request on the company takes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background()) //nolint:errcheck // test cleanup
	if _, err := held.Exec(ctx, `select 1 from companies where id in ('victim', 'victim-kid') for update;
		select 1 from company_memberships where company_id = 'victim' for update`); err != nil {
		t.Fatal(err)
	}

	requests := []struct {
		name, method, path, body string
	}{
		{"grant", "PUT", memberPath("victim", "mallory-friend"), `{"role":"owner"}`},
		{"demote the owner", "PUT", memberPath("victim", "boss"), `{"role":"viewer"}`},
		{"remove", "DELETE", memberPath("victim", "staff"), ""},
		{"rename", "PATCH", companyPath("victim"), `{"name":"pwned"}`},
		{"detach the child", "PATCH", companyPath("victim-kid"), `{"parent_id":null}`},
		{"plant a child", "POST", "/v1/companies", `{"name":"planted","parent_id":"victim"}`},
	}
	const rounds = 5
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			for range rounds {
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				// Waiting for the held locks would run into the gateway's
				// request timeout: a 503, not this 403.
				if a := s.mustSend(t, r.method, r.path, mallory, body, nil); a.status != http.StatusForbidden {
					t.Fatalf("status %d, %s; want 403 without waiting for the company's locks", a.status, a.body)
				}
			}
		})
	}
	if err := held.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	var audit struct {
		Entries []struct {
			Actor string `json:"actor"`
		} `json:"entries"`
	}
	if a := s.mustSend(t, "GET", companyPath("victim")+"/audit", s.token("boss"), nil, nil); a.status != http.StatusOK {
		t.Fatalf("audit: status %d, %s", a.status, a.body)
	} else {
		decodeAnswer(t, a, &audit)
	}
	for _, e := range audit.Entries {
		if e.Actor == "mallory" {
			t.Errorf("the victim's audit trail holds an outsider's refusal: %+v", audit.Entries)
			break
		}
	}
	refused, err := metric(s.baseURLs[0], "tenantgate_management_outsider_refusals_total")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refused-refusedBefore, float64(rounds*len(requests)); got != want {
		t.Errorf("outsider refusals counted %v, want %v", got, want)
	}

	// A member's refusal is the company's business and stays in its trail.
	if a := s.mustSend(t, "PUT", memberPath("victim", "boss"), s.token("staff"), []byte(`{"role":"viewer"}`), nil); a.status != http.StatusForbidden {
		t.Fatalf("admin demoting the owner: status %d, %s", a.status, a.body)
	}
	a := s.mustSend(t, "GET", companyPath("victim")+"/audit", s.token("boss"), nil, nil)
	decodeAnswer(t, a, &audit)
	if len(audit.Entries) == 0 || audit.Entries[0].Actor != "staff" {
		t.Errorf("newest audit entry %+v, want staff's refusal", audit.Entries)
	}
}

// TestRecreatedCompanyIDStartsWithAnEmptyAudit: whoever creates a company
// with the ID of a deleted one owns it, but not its predecessor's history.
func TestRecreatedCompanyIDStartsWithAnEmptyAudit(t *testing.T) {
	s := startEmbeddedStack(t)
	alice, mallory := s.token("alice"), s.token("mallory")
	if a := s.mustSend(t, "POST", "/v1/companies", alice, []byte(`{"id":"acme-x","name":"ACME X"}`), nil); a.status != http.StatusCreated {
		t.Fatalf("create: status %d, %s", a.status, a.body)
	}
	for _, u := range []string{"secret-partner@bank.example", "cfo@acme.example"} {
		if a := s.mustSend(t, "PUT", memberPath("acme-x", u), alice, []byte(`{"role":"admin"}`), nil); a.status != http.StatusOK {
			t.Fatalf("grant %s: status %d, %s", u, a.status, a.body)
		}
	}
	// The application deletes the company with its own SQL.
	s.exec(`delete from companies where id = 'acme-x'`)

	if a := s.mustSend(t, "POST", "/v1/companies", mallory, []byte(`{"id":"acme-x","name":"Mine now"}`), nil); a.status != http.StatusCreated {
		t.Fatalf("recreate: status %d, %s", a.status, a.body)
	}
	var audit struct {
		Entries []struct {
			Actor  string `json:"actor"`
			Action string `json:"action"`
			Target string `json:"target"`
		} `json:"entries"`
	}
	a := s.mustSend(t, "GET", companyPath("acme-x")+"/audit", mallory, nil, nil)
	if a.status != http.StatusOK {
		t.Fatalf("audit: status %d, %s", a.status, a.body)
	}
	decodeAnswer(t, a, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Actor != "mallory" || audit.Entries[0].Action != "company.create" {
		t.Errorf("the recreated company's audit = %s, want only mallory's creation", fmt.Sprint(audit.Entries))
	}
}
