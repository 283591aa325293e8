package app_test

import (
	"net/http"
	"testing"

	"github.com/tenantgate/tenantgate/internal/app"
)

// TestInvitationsNeedConsent runs the gateway with --membership-consent
// required: a grant is an invitation that grants nothing until the invitee
// accepts it, and a declined one is gone.
func TestInvitationsNeedConsent(t *testing.T) {
	s := startEmbeddedStackWith(t, func(c *app.Config) { c.MembershipConsent = "required" }, `
INSERT INTO companies (id, name, parent_id) VALUES ('acme', 'Acme', NULL);
INSERT INTO company_memberships (user_id, company_id, role) VALUES ('olive', 'acme', 'owner');
`)
	var grant struct {
		Status           string `json:"status"`
		ConsistencyToken string `json:"consistency_token"`
	}
	if code := s.do("PUT", "/v1/companies/acme/members/ben", s.token("olive"), map[string]string{"role": "editor"}, &grant); code != http.StatusOK || grant.Status != "pending" {
		t.Fatalf("grant: status %d, membership %q; want a pending invitation", code, grant.Status)
	}
	checkAt := func(user, token string) bool {
		t.Helper()
		var ans checkAnswer
		body := map[string]string{"permission": "update", "company": "acme", "consistency_token": token}
		if code := s.do("POST", "/v1/check", s.token(user), body, &ans); code != http.StatusOK {
			t.Fatalf("check: status %d", code)
		}
		return ans.Allowed
	}
	if checkAt("ben", grant.ConsistencyToken) {
		t.Fatal("a pending invitation grants update")
	}
	// Nobody answers for ben: not the owner who invited him.
	if code := s.do("POST", "/v1/companies/acme/members/ben/accept", s.token("olive"), nil, nil); code != http.StatusForbidden {
		t.Errorf("olive accepts ben's invitation: status %d, want 403", code)
	}
	var accepted struct {
		Status           string `json:"status"`
		ConsistencyToken string `json:"consistency_token"`
	}
	if code := s.do("POST", "/v1/companies/acme/members/ben/accept", s.token("ben"), nil, &accepted); code != http.StatusOK || accepted.Status != "active" {
		t.Fatalf("accept: status %d, membership %q", code, accepted.Status)
	}
	if !checkAt("ben", accepted.ConsistencyToken) {
		t.Error("an accepted membership does not grant update at its own consistency token")
	}

	if code := s.do("PUT", "/v1/companies/acme/members/cy", s.token("olive"), map[string]string{"role": "viewer"}, nil); code != http.StatusOK {
		t.Fatalf("second grant: status %d", code)
	}
	a, err := s.send("POST", "/v1/companies/acme/members/cy/decline", s.token("cy"), nil, nil)
	if err != nil || a.status != http.StatusNoContent || a.header.Get("Consistency-Token") == "" {
		t.Fatalf("decline: %v, status %d", err, a.status)
	}
	if code := s.do("POST", "/v1/companies/acme/members/cy/accept", s.token("cy"), nil, nil); code != http.StatusNotFound {
		t.Errorf("accepting a declined invitation: status %d, want 404", code)
	}
}
