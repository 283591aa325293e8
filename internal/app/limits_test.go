package app_test

import (
	"net/http"
	"testing"

	"github.com/tenantgate/tenantgate/internal/app"
)

// TestRateLimitsKeepTenantsApart drives one user past its rate limit on a
// real gateway: it gets 429s with Retry-After, while another tenant's user
// goes on being answered.
func TestRateLimitsKeepTenantsApart(t *testing.T) {
	s := startEmbeddedStackWith(t, func(c *app.Config) { c.RateLimitUser = 2 }, `
INSERT INTO companies (id, name, parent_id) VALUES ('acme', 'Acme', NULL), ('globex', 'Globex', NULL);
INSERT INTO company_memberships (user_id, company_id, role) VALUES ('mallory', 'acme', 'owner'), ('gil', 'globex', 'owner');
`)
	check := func(user, company string) answer {
		t.Helper()
		a, err := s.send("POST", "/v1/check", s.token(user), []byte(`{"permission":"read","company":"`+company+`"}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	limited := 0
	for range 20 {
		a := check("mallory", "acme")
		switch a.status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			if a.header.Get("Retry-After") == "" || a.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("429 without Retry-After or problem document: %v", a.header)
			}
		default:
			t.Fatalf("status %d", a.status)
		}
	}
	// A burst of 4 then 2 a second: 20 quick requests cannot all pass.
	if limited < 10 {
		t.Errorf("%d of 20 requests limited, want most", limited)
	}
	if a := check("gil", "globex"); a.status != http.StatusOK {
		t.Errorf("another tenant's user: status %d while mallory is limited", a.status)
	}
	if n, err := metric(s.baseURL(), `tenantgate_rate_limited_total{scope="user"}`); err != nil || n != float64(limited) {
		t.Errorf("tenantgate_rate_limited_total{scope=\"user\"} = %v (%v), want %d", n, err, limited)
	}
}
