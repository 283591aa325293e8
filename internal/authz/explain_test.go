package authz_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestExplain(t *testing.T) {
	// paris < france < europe < holding
	chain := []string{"paris", "france", "europe", "holding"}
	tests := []struct {
		name     string
		p        authz.Permission
		roles    map[string][]authz.Role
		platform authz.PlatformGrant
		allowed  bool
		// held is "company/role/grants" of every membership listed.
		held []string
		text []string
	}{
		{
			name: "no membership", p: authz.PermRead, roles: nil,
			text: []string{"u may not read on paris", "no membership in this company or above it", "owner, admin, editor, viewer"},
		},
		{
			name: "direct role grants", p: authz.PermUpdate, roles: map[string][]authz.Role{"paris": {authz.RoleEditor}},
			allowed: true, held: []string{"paris/editor/true"},
			text: []string{"u may update on paris", "editor (held on paris) grants update"},
		},
		{
			name: "inherited role grants, path runs down to the company", p: authz.PermDelete,
			roles:   map[string][]authz.Role{"europe": {authz.RoleAdmin}},
			allowed: true, held: []string{"europe/admin/true"},
			text: []string{"inherited through europe > france > paris"},
		},
		{
			name: "roles add up along the chain: every one is listed", p: authz.PermManageMembers,
			roles:   map[string][]authz.Role{"holding": {authz.RoleViewer}, "france": {authz.RoleAdmin}, "paris": {authz.RoleOwner}},
			allowed: true, held: []string{"paris/owner/true", "france/admin/true", "holding/viewer/false"},
		},
		{
			name: "weaker role above is a deny that says what is needed", p: authz.PermCreate,
			roles: map[string][]authz.Role{"europe": {authz.RoleEditor}},
			held:  []string{"europe/editor/false"},
			text:  []string{"does not grant create", "create needs one of these roles on paris or above it: owner, admin"},
		},
		{
			name: "platform role grants", p: authz.PermRead, platform: authz.PlatformGrant{Group: "support", Role: authz.RoleViewer},
			allowed: true, text: []string{`platform role viewer from token group "support", which grants read on every company`},
		},
		{
			name: "platform admin never grants manage_owners", p: authz.PermManageOwners,
			platform: authz.PlatformGrant{Group: "ops", Role: authz.RoleAdmin},
			text:     []string{"which does not grant manage_owners", "manage_owners needs one of these roles on paris or above it: owner"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := authz.Explain("u", tt.p, authz.ExplainFacts{Chain: chain, Roles: tt.roles}, tt.platform)
			if e.Allowed != tt.allowed || e.Company != "paris" {
				t.Errorf("allowed %v on %q, want %v on paris", e.Allowed, e.Company, tt.allowed)
			}
			var held []string
			for _, h := range e.Memberships {
				held = append(held, h.Company+"/"+string(h.Role)+"/"+map[bool]string{true: "true", false: "false"}[h.Grants])
				if h.Path[0] != h.Company || h.Path[len(h.Path)-1] != "paris" {
					t.Errorf("path %v of %s does not run from it down to paris", h.Path, h.Company)
				}
			}
			if !slices.Equal(held, tt.held) {
				t.Errorf("memberships %v, want %v", held, tt.held)
			}
			for _, want := range tt.text {
				if !strings.Contains(e.String(), want) {
					t.Errorf("text lacks %q:\n%s", want, e.String())
				}
			}
		})
	}
}

// TestExplainAgreesWithRoleTable: an explanation's verdict is the role
// table's, for every role held on every level and every permission.
func TestExplainAgreesWithRoleTable(t *testing.T) {
	chain := []string{"c", "b", "a"}
	for _, r := range authz.Roles {
		for level, company := range chain {
			for _, p := range authz.Permissions {
				e := authz.Explain("u", p, authz.ExplainFacts{Chain: chain, Roles: map[string][]authz.Role{company: {r}}}, authz.PlatformGrant{})
				if e.Allowed != r.Grants(p) || len(e.Memberships) != 1 || e.Memberships[0].Inherited() != (level > 0) {
					t.Errorf("%s on %s, %s: %+v", r, company, p, e)
				}
			}
		}
	}
}
