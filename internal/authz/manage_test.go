package authz

import (
	"errors"
	"fmt"
	"testing"
)

func TestStrongest(t *testing.T) {
	for _, tc := range []struct {
		roles []Role
		want  Role
	}{
		{nil, ""},
		{[]Role{""}, ""},
		{[]Role{RoleViewer, RoleAdmin, RoleEditor}, RoleAdmin},
		{[]Role{"", RoleViewer}, RoleViewer},
		{[]Role{RoleEditor, RoleOwner}, RoleOwner},
	} {
		if got := Strongest(tc.roles...); got != tc.want {
			t.Errorf("Strongest(%v) = %q, want %q", tc.roles, got, tc.want)
		}
	}
}

func member(role Role, status Status) *Membership {
	return &Membership{Role: role, Status: status}
}

// The exhaustive check of these rules is the escalation matrix in
// internal/app, which judges every cell from docs/design.md's text; these cases
// pin the decisions whose order matters.
func TestDecideMemberChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change MemberChange
		want   error
	}{
		{"admin grants editor", MemberChange{Actor: "a", Target: "b", ActorRole: RoleAdmin, Next: member(RoleEditor, StatusActive)}, nil},
		{"admin may not grant owner", MemberChange{Actor: "a", Target: "b", ActorRole: RoleAdmin, Next: member(RoleOwner, StatusActive)}, ErrForbidden},
		{"admin may not demote an owner", MemberChange{Actor: "a", Target: "b", ActorRole: RoleAdmin, Current: member(RoleOwner, StatusActive), Next: member(RoleViewer, StatusActive), OtherActiveOwners: 3}, ErrForbidden},
		{"editor may not grant", MemberChange{Actor: "a", Target: "b", ActorRole: RoleEditor, Next: member(RoleViewer, StatusActive)}, ErrForbidden},
		{"nobody changes their own role", MemberChange{Actor: "a", Target: "a", ActorRole: RoleOwner, Current: member(RoleOwner, StatusActive), Next: member(RoleViewer, StatusActive), OtherActiveOwners: 1}, ErrForbidden},
		{"leaving needs no right", MemberChange{Actor: "a", Target: "a", Current: member(RoleViewer, StatusActive)}, nil},
		{"leaving without a membership", MemberChange{Actor: "a", Target: "a"}, ErrNotFound},
		{"the last owner of a root may not leave", MemberChange{Actor: "a", Target: "a", ActorRole: RoleOwner, Current: member(RoleOwner, StatusActive), Root: true}, ErrConflict},
		{"the last owner of a child may leave", MemberChange{Actor: "a", Target: "a", ActorRole: RoleOwner, Current: member(RoleOwner, StatusActive)}, nil},
		{"rights before existence", MemberChange{Actor: "a", Target: "b", ActorRole: RoleViewer}, ErrForbidden},
		{"removing nobody", MemberChange{Actor: "a", Target: "b", ActorRole: RoleAdmin}, ErrNotFound},
		{"deactivating the last owner", MemberChange{Actor: "a", Target: "b", ActorRole: RoleOwner, Current: member(RoleOwner, StatusActive), Next: member(RoleOwner, StatusInactive), Root: true}, ErrConflict},
		{"an inactive owner is not the last owner", MemberChange{Actor: "a", Target: "b", ActorRole: RoleOwner, Current: member(RoleOwner, StatusInactive), Root: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DecideMemberChange(tc.change)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("DecideMemberChange = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecideCompanyChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change CompanyChange
		want   error
	}{
		{"anyone creates a root", CompanyChange{Create: true}, nil},
		{"a child needs create on the parent", CompanyChange{Create: true, NewParent: "p", ActorParentRole: RoleEditor}, ErrForbidden},
		{"admin creates a child", CompanyChange{Create: true, NewParent: "p", ActorParentRole: RoleAdmin}, nil},
		{"editor renames", CompanyChange{ActorRole: RoleEditor, Rename: true}, nil},
		{"viewer may not rename", CompanyChange{ActorRole: RoleViewer, Rename: true}, ErrForbidden},
		{"a stranger learns nothing", CompanyChange{Rename: true}, ErrForbidden},
		{"admin may not move a root", CompanyChange{ActorRole: RoleAdmin, Move: true, NewParent: "p", ActorParentRole: RoleOwner}, ErrForbidden},
		{"owner moves a root under a parent they create in", CompanyChange{ActorRole: RoleOwner, Move: true, NewParent: "p", ActorParentRole: RoleAdmin}, nil},
		{"owner may not move a root under a parent they only view", CompanyChange{ActorRole: RoleOwner, Move: true, NewParent: "p", ActorParentRole: RoleViewer}, ErrForbidden},
		{"owner above moves a subsidiary within the tree", CompanyChange{ActorRole: RoleOwner, Move: true, NewParent: "p", ActorParentRole: RoleOwner,
			HasParent: true, ActorCurrentParentRole: RoleOwner}, nil},
		{"the subsidiary's own owner may not move it away", CompanyChange{ActorRole: RoleOwner, Move: true, NewParent: "p", ActorParentRole: RoleOwner,
			HasParent: true}, ErrForbidden},
		{"the subsidiary's own owner may not detach it", CompanyChange{ActorRole: RoleOwner, Move: true, HasActiveOwner: true,
			HasParent: true}, ErrForbidden},
		{"an admin above may not move a subsidiary", CompanyChange{ActorRole: RoleAdmin, Move: true, NewParent: "p", ActorParentRole: RoleOwner,
			HasParent: true, ActorCurrentParentRole: RoleAdmin}, ErrForbidden},
		{"a new root needs an owner of its own", CompanyChange{ActorRole: RoleOwner, Move: true}, ErrConflict},
		{"a new root with its own owner", CompanyChange{ActorRole: RoleOwner, Move: true, HasActiveOwner: true}, nil},
		{"the owner above detaches a subsidiary with its own owner", CompanyChange{ActorRole: RoleOwner, Move: true, HasActiveOwner: true,
			HasParent: true, ActorCurrentParentRole: RoleOwner}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DecideCompanyChange(tc.change)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("DecideCompanyChange = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                 "allowed",
		fmt.Errorf("x: %w", ErrForbidden):   "forbidden",
		fmt.Errorf("x: %w", ErrConflict):    "conflict",
		fmt.Errorf("x: %w", ErrNotFound):    "not_found",
		fmt.Errorf("x: %w", ErrInvalid):     "invalid",
		fmt.Errorf("x: %w", ErrUnavailable): "failed",
	} {
		if got := Outcome(err); got != want {
			t.Errorf("Outcome(%v) = %q, want %q", err, got, want)
		}
		if got, wantRefused := Refused(err), want != "allowed" && want != "failed"; got != wantRefused {
			t.Errorf("Refused(%v) = %v, want %v", err, got, wantRefused)
		}
	}
}
