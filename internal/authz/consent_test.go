package authz_test

import (
	"errors"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestInvited(t *testing.T) {
	active := &authz.Membership{UserID: "bob", Status: authz.StatusActive}
	pending := &authz.Membership{UserID: "bob", Status: authz.StatusPending}
	inactive := &authz.Membership{UserID: "bob", Status: authz.StatusInactive}
	tests := []struct {
		name    string
		consent authz.Consent
		actor   string
		current *authz.Membership
		asked   authz.Status
		want    authz.Status
	}{
		{"no consent: as asked", authz.ConsentNone, "alice", nil, authz.StatusActive, authz.StatusActive},
		{"a new membership starts pending", authz.ConsentRequired, "alice", nil, authz.StatusActive, authz.StatusPending},
		{"an inactive one made active again asks again", authz.ConsentRequired, "alice", inactive, authz.StatusActive, authz.StatusPending},
		{"a pending one stays pending", authz.ConsentRequired, "alice", pending, authz.StatusActive, authz.StatusPending},
		{"an accepted one keeps its status through a role change", authz.ConsentRequired, "alice", active, authz.StatusActive, authz.StatusActive},
		{"deactivating needs no consent", authz.ConsentRequired, "alice", active, authz.StatusInactive, authz.StatusInactive},
		{"one's own is as asked (and refused elsewhere)", authz.ConsentRequired, "bob", nil, authz.StatusActive, authz.StatusActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := authz.Membership{UserID: "bob", CompanyID: "co", Role: authz.RoleViewer, Status: tt.asked}
			if got := authz.Invited(tt.consent, tt.actor, tt.current, next); got.Status != tt.want || got.Role != next.Role {
				t.Errorf("Invited = %+v, want status %s", got, tt.want)
			}
		})
	}
}

func TestDecideResponse(t *testing.T) {
	tests := []struct {
		name          string
		actor, target string
		current       *authz.Membership
		want          error
	}{
		{"the invitee answers its invitation", "bob", "bob", &authz.Membership{Status: authz.StatusPending}, nil},
		{"nobody answers for another", "alice", "bob", &authz.Membership{Status: authz.StatusPending}, authz.ErrForbidden},
		{"no invitation", "bob", "bob", nil, authz.ErrNotFound},
		{"already active", "bob", "bob", &authz.Membership{Status: authz.StatusActive}, authz.ErrConflict},
		{"inactive is no invitation", "bob", "bob", &authz.Membership{Status: authz.StatusInactive}, authz.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authz.DecideResponse(tt.actor, tt.target, tt.current)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("DecideResponse = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseConsent(t *testing.T) {
	for _, s := range []string{"none", "required"} {
		if c, err := authz.ParseConsent(s); err != nil || string(c) != s {
			t.Errorf("ParseConsent(%q) = %q, %v", s, c, err)
		}
	}
	if _, err := authz.ParseConsent("Required"); !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("ParseConsent(Required) = %v, want ErrInvalid", err)
	}
}
