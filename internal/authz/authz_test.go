package authz

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAcceptsExactlyTheModel(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, p := range Permissions {
		if got, err := ParsePermission(string(p)); err != nil || got != p {
			t.Errorf("ParsePermission(%q) = %q, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "Owner", "superuser", "owner "} {
		if _, err := ParseRole(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRole(%q) = %v, want ErrInvalid", bad, err)
		}
		if _, err := ParsePermission(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePermission(%q) = %v, want ErrInvalid", bad, err)
		}
		if _, err := ParseStatus(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseStatus(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRolesAreNested(t *testing.T) {
	// Each role grants everything the next weaker one does, and more.
	for i := 0; i+1 < len(Roles); i++ {
		stronger, weaker := Roles[i], Roles[i+1]
		extra := 0
		for _, p := range Permissions {
			if weaker.Grants(p) && !stronger.Grants(p) {
				t.Errorf("%s grants %s but %s does not", weaker, p, stronger)
			}
			if stronger.Grants(p) && !weaker.Grants(p) {
				extra++
			}
		}
		if extra == 0 {
			t.Errorf("%s grants nothing %s does not", stronger, weaker)
		}
	}
	if RoleAdmin.Grants(PermManageOwners) || !RoleOwner.Grants(PermManageOwners) {
		t.Error("only owners may manage owners")
	}
}

func TestValidateIDs(t *testing.T) {
	tests := []struct {
		id        string
		userOK    bool
		companyOK bool
	}{
		{"alice@example.com", true, true},
		{"Zürich AG", true, true},
		{"*", false, true},
		{"", false, false},
		{"tab\there", false, false},
		{strings.Repeat("x", MaxIDBytes), true, true},
		{strings.Repeat("x", MaxIDBytes+1), false, false},
		{"\xff\xfe", false, false},
	}
	for _, tt := range tests {
		if err := ValidateUserID(tt.id); (err == nil) != tt.userOK || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("ValidateUserID(%.20q) = %v, want ok=%v", tt.id, err, tt.userOK)
		}
		if err := ValidateCompanyID(tt.id); (err == nil) != tt.companyOK || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("ValidateCompanyID(%.20q) = %v, want ok=%v", tt.id, err, tt.companyOK)
		}
	}
}

func TestOnlyActiveMembershipsGrant(t *testing.T) {
	for _, st := range []Status{StatusActive, StatusInactive, StatusPending} {
		_, ok := MembershipRelationship(Membership{UserID: "u", CompanyID: "c", Role: RoleViewer, Status: st})
		if ok != (st == StatusActive) {
			t.Errorf("status %s: relationship %v", st, ok)
		}
	}
	if _, ok := ParentRelationship(Company{ID: "root"}); ok {
		t.Error("a root company has a parent relationship")
	}
}
