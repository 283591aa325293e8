package app_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
)

// platformSeed is two trees and a lone root. Company IDs are plain lower
// case letters so that Postgres's ID order (the listing's, under whatever
// collation the test database has) is Go's sort order too. The users the
// tests give platform groups to hold no memberships, except mel (viewer on
// alpha) and ada (admin on charlie), whose own roles must keep counting.
const platformSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('alpha', 'Alpha', NULL),
  ('alphaone', 'Alpha One', 'alpha'),
  ('alphatwo', 'Alpha Two', 'alphaone'),
  ('bravo', 'Bravo', NULL),
  ('bravoone', 'Bravo One', 'bravo'),
  ('charlie', 'Charlie', NULL);
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('bob', 'bravo', 'owner', 'active'),
  ('mel', 'alpha', 'viewer', 'active'),
  ('ada', 'charlie', 'admin', 'active');`

var platformCompanies = []string{"alpha", "alphaone", "alphatwo", "bravo", "bravoone", "charlie"}

// groupToken mints a token for user whose "groups" claim is groups, any
// JSON value; nil leaves the claim out.
func (s *stack) groupToken(t *testing.T, user string, groups any) string {
	t.Helper()
	var extra map[string]any
	if groups != nil {
		extra = map[string]any{"groups": groups}
	}
	tok, err := s.issuer.Mint(user, time.Hour, extra)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// checkWith is a check as bearer (about subject when not empty), which must
// be answered.
func (s *stack) checkWith(t *testing.T, bearer, subject, perm, company string) bool {
	t.Helper()
	body := map[string]any{"permission": perm, "company": company}
	if subject != "" {
		body["subject"] = subject
	}
	var ans checkAnswer
	if code := s.do("POST", "/v1/check", bearer, body, &ans); code != http.StatusOK {
		t.Fatalf("check %s on %s: status %d", perm, company, code)
	}
	return ans.Allowed
}

// labelledMetric reads one series of a gateway's /metrics, e.g.
// `tenantgate_platform_role_allows_total{role="viewer"}`; a series not yet
// written is 0, as a counter's is.
func labelledMetric(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return 0
}

// seriesTotal is labelledMetric summed over every replica of the stack,
// since requests go to them round-robin.
func (s *stack) seriesTotal(t *testing.T, series string) float64 {
	t.Helper()
	var sum float64
	for _, base := range s.baseURLs {
		sum += labelledMetric(t, base, series)
	}
	return sum
}

type auditEntry struct {
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Company string            `json:"company_id"`
	Target  string            `json:"target"`
	Outcome string            `json:"outcome"`
	Reason  string            `json:"reason"`
	Detail  map[string]string `json:"detail"`
}

// newestAudit is company's newest audit entry, read as bearer.
func (s *stack) newestAudit(t *testing.T, bearer, company string) auditEntry {
	t.Helper()
	var page struct {
		Entries []auditEntry `json:"entries"`
	}
	if code := s.do("GET", companyPath(company)+"/audit?limit=1", bearer, nil, &page); code != http.StatusOK {
		t.Fatalf("audit of %s: status %d", company, code)
	}
	if len(page.Entries) != 1 {
		t.Fatalf("audit of %s: %d entries, want the newest", company, len(page.Entries))
	}
	return page.Entries[0]
}

// TestPlatformRoles runs on both backends, with the platform roles given as
// configuration in-process and as flags to the remote serve processes.
func TestPlatformRoles(t *testing.T) {
	starts := []struct {
		name  string
		start func(t *testing.T) *stack
	}{
		{"embedded", func(t *testing.T) *stack {
			return startEmbeddedStackWith(t, func(c *app.Config) {
				c.GroupsClaim = "groups"
				c.PlatformRoles = []string{"support=viewer", "ops=admin"}
			}, platformSeed)
		}},
		{"remote", func(t *testing.T) *stack {
			return startRemoteStackWith(t, []string{"--groups-claim", "groups", "--platform-role", "support=viewer", "--platform-role", "ops=admin"}, platformSeed)
		}},
	}
	for _, b := range starts {
		t.Run(b.name, func(t *testing.T) { platformRoles(t, b.start(t)) })
	}
}

func platformRoles(t *testing.T, s *stack) {
	support := s.groupToken(t, "sam", []string{"support"})
	ops := s.groupToken(t, "olga", []string{"ops"})

	t.Run("checks", func(t *testing.T) {
		type want struct {
			perm, company string
			allowed       bool
		}
		var supportReads []want
		for _, c := range platformCompanies {
			supportReads = append(supportReads, want{"read", c, true})
		}
		for _, c := range []struct {
			name   string
			groups any
			wants  []want
		}{
			{"support reads every company", []string{"support"}, supportReads},
			{"support is only a viewer", []string{"support"}, []want{
				{"update", "alpha", false}, {"create", "bravoone", false}, {"delete", "charlie", false},
				{"manage_members", "alpha", false}, {"manage_owners", "alpha", false}}},
			// A platform role holds on companies that exist in Postgres,
			// not on every ID a caller can make up.
			{"support on a company that does not exist", []string{"support"}, []want{{"read", "nosuch", false}}},
			{"ops is an admin but no owner", []string{"ops"}, []want{
				{"delete", "bravoone", true}, {"manage_members", "charlie", true}, {"create", "alphatwo", true},
				{"manage_owners", "bravo", false}, {"manage_owners", "alpha", false}}},
			{"the strongest of two groups counts", []string{"support", "ops"}, []want{{"delete", "alpha", true}, {"manage_owners", "alpha", false}}},
			{"groups claim absent", nil, []want{{"read", "alpha", false}}},
			{"unmapped group", []string{"other", "Support"}, []want{{"read", "alpha", false}}},
			{"empty groups", []string{}, []want{{"read", "alpha", false}}},
			// A claim of the wrong shape reads no groups at all (and is
			// logged); the token still authenticates, so the checks answer.
			{"groups claim is a number", 42, []want{{"read", "alpha", false}}},
			{"groups claim is an object", map[string]bool{"support": true}, []want{{"read", "alpha", false}}},
			{"groups array holds a number", []any{"support", 7}, []want{{"read", "alpha", false}}},
			{"space-separated string", "other support", []want{{"read", "alpha", true}, {"update", "alpha", false}}},
			{"string of one group", "ops", []want{{"delete", "charlie", true}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				tok := s.groupToken(t, "nora", c.groups)
				for _, w := range c.wants {
					if got := s.checkWith(t, tok, "", w.perm, w.company); got != w.allowed {
						t.Errorf("%s on %s = %v, want %v", w.perm, w.company, got, w.allowed)
					}
				}
			})
		}
	})

	t.Run("bulk check", func(t *testing.T) {
		var ans struct {
			Results []struct {
				Permission, Company string
				Allowed             bool
			} `json:"results"`
		}
		checks := []map[string]string{
			{"permission": "read", "company": "alpha"}, {"permission": "read", "company": "nosuch"},
			{"permission": "update", "company": "alpha"}, {"permission": "read", "company": "charlie"},
		}
		if code := s.do("POST", "/v1/check/bulk", support, map[string]any{"checks": checks}, &ans); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		var got []bool
		for _, r := range ans.Results {
			got = append(got, r.Allowed)
		}
		if want := []bool{true, false, false, true}; !slices.Equal(got, want) {
			t.Errorf("bulk answers %v, want %v", got, want)
		}
	})

	t.Run("list", func(t *testing.T) {
		for _, c := range []struct {
			name, perm string
			bearer     string
			want       []string
			// unordered: the memberships' listing is in SpiceDB's order,
			// not ID order.
			unordered bool
		}{
			{"support reads all, in ID order", "read", support, platformCompanies, false},
			{"ops deletes all", "delete", ops, platformCompanies, false},
			// Not granted by the platform role: the memberships decide,
			// and sam has none.
			{"support updates none", "update", support, nil, false},
			{"ops owns none", "manage_owners", ops, nil, false},
			{"no groups, no companies", "read", s.token("sam"), nil, false},
			// mel's own viewer role on alpha still lists its tree.
			{"membership without platform role", "read", s.token("mel"), []string{"alpha", "alphaone", "alphatwo"}, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				got := s.listAllPages(t, c.bearer, c.perm, 2)
				if c.want == nil {
					if len(got) != 0 {
						t.Errorf("listed %v, want none", got)
					}
					return
				}
				if c.unordered {
					slices.Sort(got)
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("listed %v, want %v", got, c.want)
				}
			})
		}
		t.Run("cursor of a platform listing is refused without the role", func(t *testing.T) {
			var page companyPage
			s.do("GET", "/v1/companies?limit=2", support, nil, &page)
			if page.NextCursor == "" {
				t.Fatal("first page of 2 has no next cursor")
			}
			a := s.mustSend(t, "GET", "/v1/companies?limit=2&cursor="+url.QueryEscape(page.NextCursor), s.token("sam"), nil, nil)
			problemOf(t, a, http.StatusBadRequest)
		})
	})

	t.Run("permissions", func(t *testing.T) {
		none := map[string]bool{"read": false, "update": false, "create": false, "delete": false, "manage_members": false, "manage_owners": false}
		for _, c := range []struct {
			name, company, bearer string
			want                  map[string]bool
		}{
			{"support", "bravoone", support, map[string]bool{"read": true, "update": false, "create": false, "delete": false, "manage_members": false, "manage_owners": false}},
			{"ops", "alphatwo", ops, map[string]bool{"read": true, "update": true, "create": true, "delete": true, "manage_members": true, "manage_owners": false}},
			{"support on a company that does not exist", "nosuch", support, none},
		} {
			t.Run(c.name, func(t *testing.T) {
				var ans struct {
					Permissions  map[string]bool         `json:"permissions"`
					Explanations map[string]*explanation `json:"explanations"`
				}
				if code := s.do("GET", companyPath(c.company)+"/permissions?explain=true", c.bearer, nil, &ans); code != http.StatusOK {
					t.Fatalf("status %d", code)
				}
				if !reflect.DeepEqual(ans.Permissions, c.want) {
					t.Errorf("permissions %v, want %v", ans.Permissions, c.want)
				}
				for _, p := range authz.Permissions {
					e := ans.Explanations[string(p)]
					if e == nil {
						t.Errorf("no explanation of %s", p)
						continue
					}
					if e.Allowed != ans.Permissions[string(p)] {
						t.Errorf("%s: explanation allowed=%v, permissions map %v", p, e.Allowed, ans.Permissions[string(p)])
					}
					// The platform role holds only on companies that exist.
					if exists := c.company != "nosuch"; (e.PlatformRole != nil) != exists {
						t.Errorf("%s: platform role %+v on a company that exists=%v", p, e.PlatformRole, exists)
					}
				}
			})
		}
	})

	t.Run("authzen", func(t *testing.T) {
		evaluation := func(subject, action, company string, explain bool) map[string]any {
			body := map[string]any{
				"subject":  map[string]string{"type": "user", "id": subject},
				"action":   map[string]string{"name": action},
				"resource": map[string]string{"type": "company", "id": company},
			}
			if explain {
				body["context"] = map[string]any{"explain": true}
			}
			return body
		}
		type decision struct {
			Decision bool `json:"decision"`
			Context  *struct {
				Explanation *explanation `json:"explanation"`
			} `json:"context"`
		}
		for _, c := range []struct {
			bearer, subject, action, company string
			want                             bool
		}{
			{support, "sam", "read", "charlie", true},
			{support, "sam", "update", "charlie", false},
			{support, "sam", "read", "nosuch", false},
			{ops, "olga", "delete", "bravo", true},
			{ops, "olga", "manage_owners", "bravo", false},
			// The service names subjects without their tokens.
			{serviceToken, "sam", "read", "charlie", false},
		} {
			t.Run(fmt.Sprintf("%s %s %s", c.subject, c.action, c.company), func(t *testing.T) {
				var d decision
				if code := s.do("POST", "/access/v1/evaluation", c.bearer, evaluation(c.subject, c.action, c.company, false), &d); code != http.StatusOK {
					t.Fatalf("status %d", code)
				}
				if d.Decision != c.want {
					t.Errorf("decision %v, want %v", d.Decision, c.want)
				}
			})
		}
		t.Run("explained", func(t *testing.T) {
			var d decision
			if code := s.do("POST", "/access/v1/evaluation", support, evaluation("sam", "read", "alphaone", true), &d); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if !d.Decision || d.Context == nil || d.Context.Explanation == nil {
				t.Fatalf("decision %+v, want an explained allow", d)
			}
			if pr := d.Context.Explanation.PlatformRole; pr == nil || *pr != (platformRoleAt{Group: "support", Role: "viewer", Grants: true}) {
				t.Errorf("platform role %+v, want support's viewer, granting", pr)
			}
		})
		t.Run("boxcar", func(t *testing.T) {
			var ans struct {
				Evaluations []decision `json:"evaluations"`
			}
			body := map[string]any{
				"subject": map[string]string{"type": "user", "id": "sam"},
				"action":  map[string]string{"name": "read"},
				"evaluations": []map[string]any{
					{"resource": map[string]string{"type": "company", "id": "alpha"}},
					{"resource": map[string]string{"type": "company", "id": "nosuch"}},
					{"resource": map[string]string{"type": "company", "id": "bravoone"}, "action": map[string]string{"name": "update"}},
					{"resource": map[string]string{"type": "company", "id": "charlie"}},
				},
			}
			if code := s.do("POST", "/access/v1/evaluations", support, body, &ans); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			var got []bool
			for _, d := range ans.Evaluations {
				got = append(got, d.Decision)
			}
			if want := []bool{true, false, false, true}; !slices.Equal(got, want) {
				t.Errorf("decisions %v, want %v", got, want)
			}
		})
		t.Run("search resource", func(t *testing.T) {
			var ans struct {
				Results []struct {
					ID string `json:"id"`
				} `json:"results"`
			}
			body := map[string]any{
				"subject":  map[string]string{"type": "user", "id": "sam"},
				"action":   map[string]string{"name": "read"},
				"resource": map[string]string{"type": "company"},
			}
			if code := s.do("POST", "/access/v1/search/resource", support, body, &ans); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			var got []string
			for _, r := range ans.Results {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, platformCompanies) {
				t.Errorf("found %v, want %v", got, platformCompanies)
			}
		})
	})

	t.Run("explanations", func(t *testing.T) {
		for _, c := range []struct {
			name, bearer, perm, company string
			allowed                     bool
			platform                    *platformRoleAt
			memberships                 int
			contains                    string
		}{
			{"support grants read", support, "read", "alphatwo", true, &platformRoleAt{"support", "viewer", true}, 0,
				`platform role viewer from token group "support", which grants read on every company`},
			{"support does not grant update", support, "update", "alphatwo", false, &platformRoleAt{"support", "viewer", false}, 0,
				`platform role viewer from token group "support", which does not grant update`},
			// The explanation must not claim a role on a company that is
			// not there.
			{"no platform role on a missing company", support, "read", "nosuch", false, nil, 0, "no membership in this company or above it"},
			{"ops", ops, "manage_members", "bravoone", true, &platformRoleAt{"ops", "admin", true}, 0, `from token group "ops"`},
			// mel's own role and her platform role both explain the allow.
			{"membership and platform role", s.groupToken(t, "mel", []string{"support"}), "read", "alphaone", true, &platformRoleAt{"support", "viewer", true}, 1,
				"viewer (held on alpha, inherited through alpha > alphaone) grants read"},
			{"no groups", s.token("sam"), "read", "alpha", false, nil, 0, "no membership in this company or above it"},
		} {
			t.Run(c.name, func(t *testing.T) {
				ans, _ := s.explainAs(t, c.bearer, "", c.perm, c.company)
				e := ans.Explanation
				if ans.Allowed != c.allowed {
					t.Errorf("allowed %v, want %v", ans.Allowed, c.allowed)
				}
				if !reflect.DeepEqual(e.PlatformRole, c.platform) {
					t.Errorf("platform role %+v, want %+v", e.PlatformRole, c.platform)
				}
				if len(e.Memberships) != c.memberships {
					t.Errorf("memberships %+v, want %d", e.Memberships, c.memberships)
				}
				if !strings.Contains(e.Text, c.contains) {
					t.Errorf("text %q does not contain %q", e.Text, c.contains)
				}
			})
		}
	})

	t.Run("service token gets no platform role", func(t *testing.T) {
		if s.checkWith(t, serviceToken, "sam", "read", "alpha") {
			t.Error("service token checking for sam got sam's platform role")
		}
		ans, _ := s.explainAs(t, serviceToken, "sam", "read", "alpha")
		if ans.Allowed || ans.Explanation.PlatformRole != nil {
			t.Errorf("service token's explanation for sam: allowed %v, platform role %+v; want a deny without one", ans.Allowed, ans.Explanation.PlatformRole)
		}
		// A user naming itself as subject is refused before groups count.
		a := s.mustSend(t, "POST", "/v1/check", support, jsonBody(t, map[string]any{"permission": "read", "company": "alpha", "subject": "sam"}), nil)
		problemOf(t, a, http.StatusForbidden)
	})

	t.Run("metric", func(t *testing.T) {
		viewer := `tenantgate_platform_role_allows_total{role="viewer"}`
		mel := s.groupToken(t, "mel", []string{"support"})
		for _, c := range []struct {
			name, bearer, perm, company string
			growth                      float64
		}{
			{"allowed only by the platform role", support, "read", "alpha", 1},
			// mel's membership allows it already: not the platform role's.
			{"allowed by a membership too", mel, "read", "alphaone", 0},
			{"denied: no such company", support, "read", "nosuch", 0},
			{"denied: not granted", support, "update", "alpha", 0},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := s.seriesTotal(t, viewer)
				s.checkWith(t, c.bearer, "", c.perm, c.company)
				if got := s.seriesTotal(t, viewer) - before; got != c.growth {
					t.Errorf("%s grew by %v, want %v", viewer, got, c.growth)
				}
			})
		}
		t.Run("listing", func(t *testing.T) {
			before := s.seriesTotal(t, viewer)
			s.listAllPages(t, support, "read", 100)
			if s.seriesTotal(t, viewer) <= before {
				t.Errorf("%s did not grow for a listing the platform role gave", viewer)
			}
		})
	})

	t.Run("management", func(t *testing.T) {
		platformDetail := func(t *testing.T, e auditEntry, role, group string) {
			t.Helper()
			if e.Detail["platform_role"] != role || e.Detail["platform_group"] != group {
				t.Errorf("audit detail %v, want platform_role=%q platform_group=%q", e.Detail, role, group)
			}
		}
		t.Run("ops adds a member", func(t *testing.T) {
			token := s.putMemberAs(t, ops, "bravoone", "newbie", `{"role":"editor"}`)
			e := s.newestAudit(t, ops, "bravoone")
			if e.Actor != "olga" || e.Action != authz.ActionMemberSet || e.Target != "newbie" || e.Outcome != "allowed" {
				t.Errorf("audit entry %+v, want olga's allowed member.set of newbie", e)
			}
			platformDetail(t, e, "admin", "ops")
			if e.Detail["actor_role"] != "admin" {
				t.Errorf("audit actor_role %q, want admin", e.Detail["actor_role"])
			}
			// The write reached SpiceDB: newbie edits from its token on.
			var ans checkAnswer
			s.do("POST", "/v1/check", s.token("newbie"), map[string]string{"permission": "update", "company": "bravoone", "consistency_token": token}, &ans)
			if !ans.Allowed {
				t.Error("newbie may not update bravoone after ops made it an editor")
			}
		})
		t.Run("ops cannot grant owner", func(t *testing.T) {
			for _, target := range []string{"newowner", "newbie"} {
				a := s.mustSend(t, "PUT", memberPath("bravoone", target), ops, []byte(`{"role":"owner"}`), nil)
				problemOf(t, a, http.StatusForbidden)
				e := s.newestAudit(t, ops, "bravoone")
				if e.Actor != "olga" || e.Target != target || e.Outcome != "forbidden" || !strings.Contains(e.Reason, "manage_owners") {
					t.Errorf("audit entry %+v, want olga's refusal for lack of manage_owners", e)
				}
				platformDetail(t, e, "admin", "ops")
			}
		})
		t.Run("ops cannot remove an owner", func(t *testing.T) {
			problemOf(t, s.mustSend(t, "DELETE", memberPath("bravo", "bob"), ops, nil, nil), http.StatusForbidden)
			e := s.newestAudit(t, ops, "bravo")
			if e.Action != authz.ActionMemberRemove || e.Target != "bob" || e.Outcome != "forbidden" {
				t.Errorf("audit entry %+v, want olga's refused member.remove of bob", e)
			}
			platformDetail(t, e, "admin", "ops")
			if !s.check("bob", "manage_owners", "bravo") {
				t.Error("bob lost his ownership of bravo")
			}
		})
		t.Run("ops on a company that does not exist", func(t *testing.T) {
			problemOf(t, s.mustSend(t, "PUT", memberPath("nosuch", "newbie"), ops, []byte(`{"role":"viewer"}`), nil), http.StatusForbidden)
			problemOf(t, s.mustSend(t, "GET", companyPath("nosuch")+"/audit", ops, nil, nil), http.StatusForbidden)
		})
		t.Run("ops lists members", func(t *testing.T) {
			var ans struct {
				Members []struct {
					UserID string `json:"user_id"`
					Role   string `json:"role"`
				} `json:"members"`
			}
			if code := s.do("GET", membersPath("bravoone"), ops, nil, &ans); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if len(ans.Members) != 1 || ans.Members[0].UserID != "newbie" || ans.Members[0].Role != "editor" {
				t.Errorf("members %+v, want newbie the editor", ans.Members)
			}
		})
		t.Run("support may not manage", func(t *testing.T) {
			problemOf(t, s.mustSend(t, "GET", membersPath("bravoone"), support, nil, nil), http.StatusForbidden)
			problemOf(t, s.mustSend(t, "GET", companyPath("bravoone")+"/audit", support, nil, nil), http.StatusForbidden)
			problemOf(t, s.mustSend(t, "PUT", memberPath("bravoone", "sneaky"), support, []byte(`{"role":"viewer"}`), nil), http.StatusForbidden)
			// sam holds viewer there through the platform role, so the
			// refusal is the company's business and names that role.
			e := s.newestAudit(t, ops, "bravoone")
			if e.Actor != "sam" || e.Target != "sneaky" || e.Outcome != "forbidden" {
				t.Errorf("audit entry %+v, want sam's refused member.set", e)
			}
			platformDetail(t, e, "viewer", "support")
		})
		t.Run("ops renames a company", func(t *testing.T) {
			a := s.mustSend(t, "PATCH", companyPath("bravoone"), ops, []byte(`{"name":"Bravo Uno"}`), nil)
			if a.status != http.StatusOK {
				t.Fatalf("status %d; body %s", a.status, a.body)
			}
			e := s.newestAudit(t, ops, "bravoone")
			if e.Action != authz.ActionCompanyUpdate || e.Outcome != "allowed" {
				t.Errorf("audit entry %+v, want an allowed company.update", e)
			}
			platformDetail(t, e, "admin", "ops")
		})
		t.Run("ops removes a member", func(t *testing.T) {
			a := s.mustSend(t, "DELETE", memberPath("bravoone", "newbie"), ops, nil, nil)
			if a.status != http.StatusNoContent {
				t.Fatalf("status %d; body %s", a.status, a.body)
			}
			e := s.newestAudit(t, ops, "bravoone")
			if e.Action != authz.ActionMemberRemove || e.Target != "newbie" || e.Outcome != "allowed" {
				t.Errorf("audit entry %+v, want an allowed member.remove of newbie", e)
			}
			platformDetail(t, e, "admin", "ops")
		})
		t.Run("a membership as strong as the platform role is what counts", func(t *testing.T) {
			// ada is admin of charlie herself; ops would make her admin
			// too, so the decision does not rest on the platform role.
			adaOps := s.groupToken(t, "ada", []string{"ops"})
			s.putMemberAs(t, adaOps, "charlie", "adahire", `{"role":"editor"}`)
			e := s.newestAudit(t, adaOps, "charlie")
			if e.Actor != "ada" || e.Target != "adahire" {
				t.Fatalf("audit entry %+v, want ada's member.set of adahire", e)
			}
			if _, ok := e.Detail["platform_role"]; ok {
				t.Errorf("audit detail %v names a platform role ada's own admin membership makes moot", e.Detail)
			}
		})
		t.Run("ops creates a company", func(t *testing.T) {
			a := s.mustSend(t, "POST", "/v1/companies", ops, []byte(`{"id":"bravotwo","name":"Bravo Two","parent_id":"bravo"}`), nil)
			if a.status != http.StatusCreated {
				t.Fatalf("status %d; body %s", a.status, a.body)
			}
			// An allowed creation is filed under the new company (a
			// refusal under the parent); ops's role on the parent decided.
			e := s.newestAudit(t, ops, "bravotwo")
			if e.Action != authz.ActionCompanyCreate || e.Outcome != "allowed" {
				t.Errorf("audit entry %+v, want an allowed company.create", e)
			}
			platformDetail(t, e, "admin", "ops")
			// A company that exists is covered at once, whatever the sync
			// has done with it.
			if !s.checkWith(t, support, "", "read", "bravotwo") {
				t.Error("support may not read the new company")
			}
		})
	})
}

// putMemberAs is putMember with a bearer token of the caller's making.
func (s *stack) putMemberAs(t *testing.T, bearer, company, user, body string) string {
	t.Helper()
	a := s.mustSend(t, "PUT", memberPath(company, user), bearer, []byte(body), nil)
	if a.status != http.StatusOK {
		t.Fatalf("put %s in %s: status %d; body %s", user, company, a.status, a.body)
	}
	var m struct {
		ConsistencyToken string `json:"consistency_token"`
	}
	decodeAnswer(t, a, &m)
	return m.ConsistencyToken
}
