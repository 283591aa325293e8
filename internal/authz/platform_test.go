package authz_test

import (
	"errors"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestParsePlatformRoles(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  authz.PlatformRoles
		ok    bool
	}{
		{"none", nil, authz.PlatformRoles{}, true},
		{"several", []string{"Admin=admin", "support=viewer"}, authz.PlatformRoles{"Admin": authz.RoleAdmin, "support": authz.RoleViewer}, true},
		{"the role is all after the first =", []string{"a=b=owner"}, nil, false},
		{"no role", []string{"Admin"}, nil, false},
		{"empty group", []string{"=admin"}, nil, false},
		{"unknown role", []string{"Admin=superuser"}, nil, false},
		{"group twice", []string{"Admin=admin", "Admin=viewer"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := authz.ParsePlatformRoles(tt.specs)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, authz.ErrInvalid) {
					t.Errorf("err %v is not ErrInvalid", err)
				}
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for g, r := range tt.want {
				if got[g] != r {
					t.Errorf("%s: %s, want %s", g, got[g], r)
				}
			}
		})
	}
}

func TestPlatformRolesFor(t *testing.T) {
	roles := authz.PlatformRoles{"support": authz.RoleViewer, "ops": authz.RoleAdmin, "ops2": authz.RoleAdmin, "root": authz.RoleOwner}
	tests := []struct {
		name   string
		groups []string
		want   authz.PlatformGrant
	}{
		{"no groups", nil, authz.PlatformGrant{}},
		{"unmapped groups", []string{"sales", "Support"}, authz.PlatformGrant{}},
		{"one", []string{"sales", "support"}, authz.PlatformGrant{Group: "support", Role: authz.RoleViewer}},
		{"strongest wins", []string{"support", "ops"}, authz.PlatformGrant{Group: "ops", Role: authz.RoleAdmin}},
		{"ties go to the first group in sorted order, whatever the claim's order", []string{"ops2", "ops"}, authz.PlatformGrant{Group: "ops", Role: authz.RoleAdmin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roles.For(tt.groups); got != tt.want {
				t.Errorf("For(%v) = %+v, want %+v", tt.groups, got, tt.want)
			}
		})
	}
}

// TestPlatformRoleGrantsAsTheRoleTable: a platform role grants what its
// role grants, so only a group mapped to owner can reach manage_owners.
func TestPlatformRoleGrantsAsTheRoleTable(t *testing.T) {
	for _, r := range authz.Roles {
		for _, p := range authz.Permissions {
			g := authz.PlatformGrant{Group: "g", Role: r}
			if g.Grants(p) != r.Grants(p) {
				t.Errorf("%s: platform grant %v, role table %v", r, g.Grants(p), r.Grants(p))
			}
			if p == authz.PermManageOwners && g.Grants(p) != (r == authz.RoleOwner) {
				t.Errorf("%s grants manage_owners: %v", r, g.Grants(p))
			}
		}
	}
	if (authz.PlatformGrant{}).Grants(authz.PermRead) {
		t.Error("no platform role grants read")
	}
}
