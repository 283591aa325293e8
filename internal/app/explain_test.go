package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
)

// explainSeed is a three-level tree (acme > acme-eu > acme-fr, and sud.fr
// below, whose ID SpiceDB only holds encoded) and a second tenant (initech >
// initrode). uma holds roles on two levels of acme; her inactive owner
// membership on acme-eu must never show: the sync does not write it, so it
// grants nothing and explains nothing. vic holds nothing; dan holds a role
// only at the bottom of the tree; zoé's ID is encoded in SpiceDB too.
const explainSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('acme', 'Acme', NULL),
  ('acme-eu', 'Acme Europe', 'acme'),
  ('acme-fr', 'Acme France', 'acme-eu'),
  ('sud.fr', 'Acme Sud', 'acme-fr'),
  ('initech', 'Initech', NULL),
  ('initrode', 'Initrode', 'initech');
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('uma', 'acme', 'editor', 'active'),
  ('uma', 'acme-eu', 'owner', 'inactive'),
  ('uma', 'acme-fr', 'admin', 'active'),
  ('dan', 'sud.fr', 'owner', 'active'),
  ('zoé@example.com', 'acme-eu', 'viewer', 'active'),
  ('ivan', 'initech', 'owner', 'active');`

// explanation is the API's explanation object.
type explanation struct {
	Allowed        bool            `json:"allowed"`
	Text           string          `json:"text"`
	Memberships    []heldRole      `json:"memberships"`
	PlatformRole   *platformRoleAt `json:"platform_role"`
	RolesThatGrant []string        `json:"roles_that_grant"`
}

type heldRole struct {
	Company   string   `json:"company"`
	Role      string   `json:"role"`
	Path      []string `json:"path"`
	Inherited bool     `json:"inherited"`
	Grants    bool     `json:"grants"`
}

type platformRoleAt struct {
	Group  string `json:"group"`
	Role   string `json:"role"`
	Grants bool   `json:"grants"`
}

type explainedCheck struct {
	Allowed          bool         `json:"allowed"`
	ConsistencyToken string       `json:"consistency_token"`
	Explanation      *explanation `json:"explanation"`
}

// explainAs asks POST /v1/check with "explain": true as bearer, about
// subject when it is not empty, and returns the decoded answer and its raw
// body (for what must not be anywhere in it).
func (s *stack) explainAs(t *testing.T, bearer, subject, perm, company string) (explainedCheck, []byte) {
	t.Helper()
	body := map[string]any{"permission": perm, "company": company, "explain": true}
	if subject != "" {
		body["subject"] = subject
	}
	a := s.mustSend(t, "POST", "/v1/check", bearer, jsonBody(t, body), nil)
	if a.status != http.StatusOK {
		t.Fatalf("explain %s %s on %s: status %d; body %s", subject, perm, company, a.status, a.body)
	}
	var ans explainedCheck
	decodeAnswer(t, a, &ans)
	if ans.Explanation == nil {
		t.Fatalf("explain %s %s on %s: no explanation in %s", subject, perm, company, a.body)
	}
	if ans.ConsistencyToken == "" {
		t.Errorf("explain %s %s on %s: no consistency token in %s", subject, perm, company, a.body)
	}
	// The explanation is of the answer sent with it: the gateway refuses
	// to send both when they disagree.
	if ans.Explanation.Allowed != ans.Allowed {
		t.Errorf("explanation allowed=%v but the answer is %v", ans.Explanation.Allowed, ans.Allowed)
	}
	return ans, a.body
}

// namedCompanies is every company an explanation names in its structure.
func (e explanation) namedCompanies() []string {
	var out []string
	for _, m := range e.Memberships {
		out = append(out, m.Company)
		out = append(out, m.Path...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestExplanations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, start startFunc) {
		s := start(t, explainSeed)

		t.Run("facts", func(t *testing.T) {
			for _, c := range []struct {
				name, user, perm, company string
				want                      explanation // Text is checked by contains
				contains                  []string
			}{
				{
					name: "allow via inherited role", user: "uma", perm: "update", company: "acme-eu",
					want: explanation{Allowed: true, RolesThatGrant: []string{"owner", "admin", "editor"}, Memberships: []heldRole{
						{Company: "acme", Role: "editor", Path: []string{"acme", "acme-eu"}, Inherited: true, Grants: true},
					}},
					contains: []string{"uma may update on acme-eu.", "editor (held on acme, inherited through acme > acme-eu) grants update"},
				},
				{
					// Nearest first: the direct admin before the editor
					// inherited from the root, both granting.
					name: "allow with two granting roles", user: "uma", perm: "update", company: "acme-fr",
					want: explanation{Allowed: true, RolesThatGrant: []string{"owner", "admin", "editor"}, Memberships: []heldRole{
						{Company: "acme-fr", Role: "admin", Path: []string{"acme-fr"}, Inherited: false, Grants: true},
						{Company: "acme", Role: "editor", Path: []string{"acme", "acme-eu", "acme-fr"}, Inherited: true, Grants: true},
					}},
					contains: []string{"uma may update on acme-fr.", "admin (held on acme-fr) grants update",
						"editor (held on acme, inherited through acme > acme-eu > acme-fr) grants update"},
				},
				{
					name: "allow by the nearer role while the one above does not grant", user: "uma", perm: "delete", company: "acme-fr",
					want: explanation{Allowed: true, RolesThatGrant: []string{"owner", "admin"}, Memberships: []heldRole{
						{Company: "acme-fr", Role: "admin", Path: []string{"acme-fr"}, Grants: true},
						{Company: "acme", Role: "editor", Path: []string{"acme", "acme-eu", "acme-fr"}, Inherited: true, Grants: false},
					}},
					contains: []string{"admin (held on acme-fr) grants delete", "editor (held on acme, inherited through acme > acme-eu > acme-fr) does not grant delete"},
				},
				{
					// The inactive owner membership on acme-eu would grant
					// delete; it must neither count nor be listed.
					name: "deny with a weaker role above", user: "uma", perm: "delete", company: "acme-eu",
					want: explanation{Allowed: false, RolesThatGrant: []string{"owner", "admin"}, Memberships: []heldRole{
						{Company: "acme", Role: "editor", Path: []string{"acme", "acme-eu"}, Inherited: true, Grants: false},
					}},
					contains: []string{"uma may not delete on acme-eu.", "editor (held on acme, inherited through acme > acme-eu) does not grant delete",
						"delete needs one of these roles on acme-eu or above it: owner, admin"},
				},
				{
					name: "deny with no membership", user: "vic", perm: "read", company: "acme-fr",
					want:     explanation{Allowed: false, RolesThatGrant: []string{"owner", "admin", "editor", "viewer"}, Memberships: []heldRole{}},
					contains: []string{"vic may not read on acme-fr.", "no membership in this company or above it", "read needs one of these roles on acme-fr or above it: owner, admin, editor, viewer"},
				},
				{
					// IDs outside SpiceDB's alphabet are stored encoded; the
					// explanation names them as the application does.
					name: "encoded IDs", user: "zoé@example.com", perm: "read", company: "sud.fr",
					want: explanation{Allowed: true, RolesThatGrant: []string{"owner", "admin", "editor", "viewer"}, Memberships: []heldRole{
						{Company: "acme-eu", Role: "viewer", Path: []string{"acme-eu", "acme-fr", "sud.fr"}, Inherited: true, Grants: true},
					}},
					contains: []string{"zoé@example.com may read on sud.fr.", "viewer (held on acme-eu, inherited through acme-eu > acme-fr > sud.fr) grants read"},
				},
				{
					name: "deny on a company that does not exist", user: "uma", perm: "read", company: "no-such-company",
					want:     explanation{Allowed: false, RolesThatGrant: []string{"owner", "admin", "editor", "viewer"}, Memberships: []heldRole{}},
					contains: []string{"no membership in this company or above it"},
				},
				{
					name: "owner only grants manage_owners", user: "uma", perm: "manage_owners", company: "acme-fr",
					want: explanation{Allowed: false, RolesThatGrant: []string{"owner"}, Memberships: []heldRole{
						{Company: "acme-fr", Role: "admin", Path: []string{"acme-fr"}, Grants: false},
						{Company: "acme", Role: "editor", Path: []string{"acme", "acme-eu", "acme-fr"}, Inherited: true, Grants: false},
					}},
					contains: []string{"manage_owners needs one of these roles on acme-fr or above it: owner"},
				},
			} {
				t.Run(c.name, func(t *testing.T) {
					// The user explaining its own access.
					own, _ := s.explainAs(t, s.token(c.user), "", c.perm, c.company)
					if own.Allowed != c.want.Allowed {
						t.Errorf("allowed %v, want %v", own.Allowed, c.want.Allowed)
					}
					got := *own.Explanation
					text := got.Text
					got.Text = ""
					if !reflect.DeepEqual(got, c.want) {
						t.Errorf("explanation\n %+v\nwant\n %+v", got, c.want)
					}
					for _, part := range c.contains {
						if !strings.Contains(text, part) {
							t.Errorf("text %q does not contain %q", text, part)
						}
					}
					if got.PlatformRole != nil {
						t.Errorf("platform role %+v without any platform role configured", *got.PlatformRole)
					}
					// An explanation names only companies the user may read:
					// a role held on an ancestor grants read on every
					// company below it, down to the one asked about.
					for _, co := range got.namedCompanies() {
						if !s.check(c.user, "read", co) {
							t.Errorf("explanation names %s, which %s cannot read", co, c.user)
						}
					}
					// The service may explain anyone, and gets the same
					// explanation (no platform roles here to tell them apart).
					svc, _ := s.explainAs(t, serviceToken, c.user, c.perm, c.company)
					if !reflect.DeepEqual(svc.Explanation, own.Explanation) || svc.Allowed != own.Allowed {
						t.Errorf("service token's explanation\n %+v\ndiffers from the user's own\n %+v", *svc.Explanation, *own.Explanation)
					}
				})
			}
		})

		t.Run("plain check has no explanation", func(t *testing.T) {
			a := s.mustSend(t, "POST", "/v1/check", s.token("uma"), jsonBody(t, map[string]any{"permission": "read", "company": "acme"}), nil)
			var doc map[string]json.RawMessage
			decodeAnswer(t, a, &doc)
			if a.status != http.StatusOK || doc["explanation"] != nil {
				t.Errorf("status %d, body %s: want 200 without an explanation", a.status, a.body)
			}
		})

		t.Run("subject from a user is refused", func(t *testing.T) {
			// Even naming itself: a user's token explains only its own
			// access, and a client that believes it names someone else
			// must learn that it does not.
			for _, subject := range []string{"vic", "uma"} {
				t.Run(subject, func(t *testing.T) {
					a := s.mustSend(t, "POST", "/v1/check", s.token("uma"),
						jsonBody(t, map[string]any{"permission": "read", "company": "acme-fr", "subject": subject, "explain": true}), nil)
					problemOf(t, a, http.StatusForbidden)
					if bytes.Contains(a.body, []byte("explanation")) || bytes.Contains(a.body, []byte("editor")) {
						t.Errorf("refusal tells something of the access asked about: %s", a.body)
					}
				})
			}
		})

		t.Run("service token needs a subject", func(t *testing.T) {
			a := s.mustSend(t, "POST", "/v1/check", serviceToken,
				jsonBody(t, map[string]any{"permission": "read", "company": "acme-fr", "explain": true}), nil)
			problemOf(t, a, http.StatusBadRequest)
		})

		t.Run("permissions with explanations", func(t *testing.T) {
			for _, c := range []struct {
				user, company string
				want          map[string]bool
			}{
				{"uma", "acme-fr", map[string]bool{"read": true, "update": true, "create": true, "delete": true, "manage_members": true, "manage_owners": false}},
				{"uma", "acme-eu", map[string]bool{"read": true, "update": true, "create": false, "delete": false, "manage_members": false, "manage_owners": false}},
				{"vic", "acme", map[string]bool{"read": false, "update": false, "create": false, "delete": false, "manage_members": false, "manage_owners": false}},
			} {
				t.Run(c.user+"/"+c.company, func(t *testing.T) {
					var ans struct {
						Company          string                  `json:"company"`
						Permissions      map[string]bool         `json:"permissions"`
						ConsistencyToken string                  `json:"consistency_token"`
						Explanations     map[string]*explanation `json:"explanations"`
					}
					if code := s.do("GET", "/v1/companies/"+c.company+"/permissions?explain=true", s.token(c.user), nil, &ans); code != http.StatusOK {
						t.Fatalf("status %d", code)
					}
					if !reflect.DeepEqual(ans.Permissions, c.want) {
						t.Errorf("permissions %v, want %v", ans.Permissions, c.want)
					}
					if len(ans.Explanations) != len(authz.Permissions) {
						t.Errorf("%d explanations, want one per permission (%d): %v", len(ans.Explanations), len(authz.Permissions), ans.Explanations)
					}
					for _, p := range authz.Permissions {
						e := ans.Explanations[string(p)]
						if e == nil {
							t.Errorf("no explanation of %s", p)
							continue
						}
						if e.Allowed != ans.Permissions[string(p)] {
							t.Errorf("%s: explanation says allowed=%v, the permissions map %v", p, e.Allowed, ans.Permissions[string(p)])
						}
						verdict := " may not "
						if e.Allowed {
							verdict = " may "
						}
						if want := c.user + verdict + string(p) + " on " + c.company + "."; !strings.HasPrefix(e.Text, want) {
							t.Errorf("%s: text %q does not start with %q", p, e.Text, want)
						}
						// The per-permission explanations of one answer agree
						// with the single check's, which reads the same facts.
						single, _ := s.explainAs(t, s.token(c.user), "", string(p), c.company)
						if !reflect.DeepEqual(single.Explanation, e) {
							t.Errorf("%s: permissions' explanation\n %+v\ndiffers from the check's\n %+v", p, *e, *single.Explanation)
						}
					}
				})
			}
			t.Run("without explain", func(t *testing.T) {
				a := s.mustSend(t, "GET", "/v1/companies/acme/permissions", s.token("uma"), nil, nil)
				if a.status != http.StatusOK || bytes.Contains(a.body, []byte(`"explanations"`)) {
					t.Errorf("status %d, body %s: want 200 without explanations", a.status, a.body)
				}
			})
			t.Run("malformed explain", func(t *testing.T) {
				a := s.mustSend(t, "GET", "/v1/companies/acme/permissions?explain=please", s.token("uma"), nil, nil)
				problemOf(t, a, http.StatusBadRequest)
			})
		})

		t.Run("a role below the company explains nothing above it", func(t *testing.T) {
			// dan owns sud.fr only: asked about acme-eu, the answer must
			// not mention what dan holds further down.
			ans, body := s.explainAs(t, s.token("dan"), "", "read", "acme-eu")
			if ans.Allowed || len(ans.Explanation.Memberships) != 0 {
				t.Errorf("dan on acme-eu: allowed %v, memberships %+v; want a deny with none", ans.Allowed, ans.Explanation.Memberships)
			}
			for _, f := range []string{"sud.fr", "acme-fr", `"acme"`} {
				if bytes.Contains(body, []byte(f)) {
					t.Errorf("answer names %q: %s", f, body)
				}
			}
		})

		t.Run("another tenant's company names nothing of it", func(t *testing.T) {
			// uma has no role in initech's tree: a deny must not reveal
			// initrode's parent, its members, or uma's own roles elsewhere.
			forbidden := []string{"initech", "ivan", "acme", "Initrode"}
			ans, body := s.explainAs(t, s.token("uma"), "", "read", "initrode")
			if ans.Allowed || len(ans.Explanation.Memberships) != 0 {
				t.Errorf("uma on initrode: allowed %v, memberships %+v; want a deny with none", ans.Allowed, ans.Explanation.Memberships)
			}
			if !strings.Contains(ans.Explanation.Text, "no membership in this company or above it") {
				t.Errorf("text %q does not say there is no membership", ans.Explanation.Text)
			}
			a := s.mustSend(t, "GET", "/v1/companies/initrode/permissions?explain=true", s.token("uma"), nil, nil)
			if a.status != http.StatusOK {
				t.Fatalf("permissions: status %d; body %s", a.status, a.body)
			}
			svc, svcBody := s.explainAs(t, serviceToken, "uma", "manage_members", "initrode")
			if svc.Allowed {
				t.Error("service token: uma may manage_members on initrode")
			}
			for name, b := range map[string][]byte{"check": body, "permissions": a.body, "service check": svcBody} {
				for _, f := range forbidden {
					if bytes.Contains(b, []byte(f)) {
						t.Errorf("%s answer names %q: %s", name, f, b)
					}
				}
			}
		})
	})
}

func TestExplainCommand(t *testing.T) {
	s := startEmbeddedStack(t, explainSeed)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	config := func(user, company, perm, output string) app.Config {
		cfg := app.Default()
		cfg.GatewayURL = s.baseURLs[0]
		cfg.ServiceToken = serviceToken
		cfg.ExplainUser, cfg.ExplainCompany, cfg.ExplainPermission, cfg.Output = user, company, perm, output
		return cfg
	}
	run := func(t *testing.T, cfg app.Config) string {
		t.Helper()
		var out bytes.Buffer
		if err := app.Explain(context.Background(), cfg, logger, &out); err != nil {
			t.Fatalf("explain: %v", err)
		}
		return out.String()
	}

	t.Run("text", func(t *testing.T) {
		for _, c := range []struct {
			name, user, company, perm string
			contains                  []string
		}{
			{"allow", "uma", "acme-fr", "update", []string{"uma may update on acme-fr.\n",
				"admin (held on acme-fr) grants update\n", "editor (held on acme, inherited through acme > acme-eu > acme-fr) grants update\n"}},
			{"deny", "uma", "acme-eu", "delete", []string{"uma may not delete on acme-eu.\n",
				"delete needs one of these roles on acme-eu or above it: owner, admin\n"}},
			{"no membership", "vic", "acme", "read", []string{"vic may not read on acme.\n", "no membership in this company or above it\n"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				got := run(t, config(c.user, c.company, c.perm, "text"))
				for _, part := range c.contains {
					if !strings.Contains(got, part) {
						t.Errorf("output %q does not contain %q", got, part)
					}
				}
				// The text, then the revision the answer and its facts are
				// from, on a line of its own at the end.
				lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
				last := lines[len(lines)-1]
				rev, ok := strings.CutPrefix(last, "(at revision ")
				if !ok || !strings.HasSuffix(rev, ")") || len(rev) < 2 || !strings.HasSuffix(got, ")\n") {
					t.Errorf("last line %q is not \"(at revision TOKEN)\"", last)
				}
			})
		}
	})

	t.Run("json", func(t *testing.T) {
		out := run(t, config("uma", "acme-fr", "delete", "json"))
		var got explanation
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("output is not an explanation: %v\n%s", err, out)
		}
		// The command prints the explanation the API gives the service.
		want, _ := s.explainAs(t, serviceToken, "uma", "delete", "acme-fr")
		if !reflect.DeepEqual(&got, want.Explanation) {
			t.Errorf("printed\n %+v\nthe API says\n %+v", got, *want.Explanation)
		}
		if !got.Allowed || len(got.Memberships) != 2 {
			t.Errorf("uma delete on acme-fr: %+v; want allowed by two listed memberships", got)
		}
		if strings.Contains(out, "at revision") {
			t.Errorf("json output carries the text's revision line: %s", out)
		}
	})

	t.Run("invalid flags", func(t *testing.T) {
		for _, c := range []struct {
			name    string
			change  func(*app.Config)
			mention string
		}{
			{"missing user", func(c *app.Config) { c.ExplainUser = "" }, "--user"},
			{"missing company", func(c *app.Config) { c.ExplainCompany = "" }, "--company"},
			{"unknown permission", func(c *app.Config) { c.ExplainPermission = "fly" }, "--permission"},
			{"no service token", func(c *app.Config) { c.ServiceToken = "" }, "--service-token"},
			{"gateway URL not http", func(c *app.Config) { c.GatewayURL = "ftp://" + strings.TrimPrefix(s.baseURLs[0], "http://") }, "--gateway-url"},
			{"unknown output", func(c *app.Config) { c.Output = "yaml" }, "--output"},
		} {
			t.Run(c.name, func(t *testing.T) {
				cfg := config("uma", "acme-fr", "update", "text")
				c.change(&cfg)
				var out bytes.Buffer
				err := app.Explain(context.Background(), cfg, logger, &out)
				if !errors.Is(err, authz.ErrInvalid) {
					t.Fatalf("error %v, want one wrapping authz.ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), c.mention) {
					t.Errorf("error %q does not name %s", err, c.mention)
				}
				if out.Len() != 0 {
					t.Errorf("printed %q for a refused configuration", out.String())
				}
			})
		}
	})

	t.Run("wrong service token", func(t *testing.T) {
		// The gateway's refusal is reported, not mistaken for an answer.
		cfg := config("uma", "acme-fr", "update", "text")
		cfg.ServiceToken = "not-the-service-token-0123456789"
		var out bytes.Buffer
		err := app.Explain(context.Background(), cfg, logger, &out)
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("error %v, want the gateway's 401", err)
		}
		if out.Len() != 0 {
			t.Errorf("printed %q after a refusal", out.String())
		}
	})
}
