package store_test

import (
	"errors"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestPlatformRoleActors: a platform role counts in management decisions as
// a role held on every company that exists, never beyond what its role
// grants, and every decision that rests on it names it in the audit trail.
func TestPlatformRoleActors(t *testing.T) {
	t.Parallel()
	s := openStore(t, testutil.NewTestDatabase(t))
	upsertAll(t, s, authz.Company{ID: "co", Name: "Co"}, authz.Company{ID: "kid", Name: "Kid", ParentID: "co"})
	seedMembers(t, s, member("boss", "co", authz.RoleOwner), member("ed", "kid", authz.RoleEditor))
	ops := authz.Actor{ID: "olga", Platform: authz.PlatformGrant{Group: "ops", Role: authz.RoleAdmin}}
	support := authz.Actor{ID: "sam", Platform: authz.PlatformGrant{Group: "support", Role: authz.RoleViewer}}
	// ed is an editor of kid; an ops group in ed's token would be stronger.
	edOps := authz.Actor{ID: "ed", Platform: authz.PlatformGrant{Group: "ops", Role: authz.RoleAdmin}}

	tests := []struct {
		name     string
		call     func() error
		wantErr  error
		audited  bool // the audit entry names the platform role
		company  string
		previous string // the target's membership after the call
		target   string
	}{
		{"admin platform role grants a role below owner", func() error {
			_, _, err := s.SetMember(t.Context(), ops, member("new", "kid", authz.RoleEditor))
			return err
		}, nil, true, "kid", "editor/active", "new"},
		{"admin platform role cannot make an owner", func() error {
			_, _, err := s.SetMember(t.Context(), ops, member("new2", "kid", authz.RoleOwner))
			return err
		}, authz.ErrForbidden, true, "kid", "", "new2"},
		{"admin platform role cannot demote an owner", func() error {
			_, err := s.RemoveMember(t.Context(), ops, "co", "boss")
			return err
		}, authz.ErrForbidden, true, "co", "owner/active", "boss"},
		{"viewer platform role cannot manage members", func() error {
			_, _, err := s.SetMember(t.Context(), support, member("new3", "kid", authz.RoleViewer))
			return err
		}, authz.ErrForbidden, true, "kid", "", "new3"},
		{"nobody changes their own membership, platform role or not", func() error {
			_, _, err := s.SetMember(t.Context(), edOps, member("ed", "kid", authz.RoleAdmin))
			return err
		}, authz.ErrForbidden, true, "kid", "editor/active", "ed"},
		{"admin platform role creates a child anywhere", func() error {
			_, _, err := s.CreateCompany(t.Context(), ops, authz.Company{ID: "kid2", Name: "Kid 2", ParentID: "co"})
			return err
		}, nil, true, "kid2", "owner/active", "olga"},
		{"no company, no platform role", func() error {
			_, _, err := s.UpdateCompany(t.Context(), ops, "nowhere", authz.CompanyUpdate{Name: ptr("X")})
			return err
		}, authz.ErrForbidden, false, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.target != "" {
				if got := membershipRow(t, s, tt.target, tt.company); got != tt.previous {
					t.Errorf("membership of %s in %s = %q, want %q", tt.target, tt.company, got, tt.previous)
				}
			}
			if tt.company == "" {
				return
			}
			entries, err := s.Audit(t.Context(), authz.Actor{ID: "boss"}, tt.company, 1, 0)
			if err != nil || len(entries) != 1 {
				t.Fatalf("audit of %s: %v, %d entries", tt.company, err, len(entries))
			}
			d := entries[0].Detail
			if named := d["platform_role"] != "" && d["platform_group"] != ""; named != tt.audited {
				t.Errorf("audit detail %v: names the platform role %v, want %v", d, named, tt.audited)
			}
		})
	}

	t.Run("the platform role reads members and audit of any company", func(t *testing.T) {
		if _, err := s.Members(t.Context(), ops, "co"); err != nil {
			t.Errorf("members: %v", err)
		}
		if _, err := s.Members(t.Context(), support, "co"); !errors.Is(err, authz.ErrForbidden) {
			t.Errorf("viewer platform role reads members: %v", err)
		}
	})
}
