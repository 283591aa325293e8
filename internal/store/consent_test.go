package store_test

import (
	"errors"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestMembershipConsent: with consent required, a grant to another user is
// an invitation that only that user turns into a membership, and every
// step is in the company's audit trail.
func TestMembershipConsent(t *testing.T) {
	t.Parallel()
	s := openStore(t, testutil.NewTestDatabase(t))
	s.RequireConsent()
	upsertAll(t, s, authz.Company{ID: "co", Name: "Co"})
	seedMembers(t, s, member("boss", "co", authz.RoleOwner))
	boss, bob, eve := authz.Actor{ID: "boss"}, authz.Actor{ID: "bob"}, authz.Actor{ID: "eve"}

	stored, _, err := s.SetMember(t.Context(), boss, member("bob", "co", authz.RoleEditor))
	if err != nil || stored.Status != authz.StatusPending || membershipRow(t, s, "bob", "co") != "editor/pending" {
		t.Fatalf("grant: %+v, %v, row %q; want a pending editor", stored, err, membershipRow(t, s, "bob", "co"))
	}
	if _, _, err := s.AcceptMembership(t.Context(), eve, "co"); !errors.Is(err, authz.ErrNotFound) {
		t.Errorf("eve, not invited, accepts: %v, want ErrNotFound", err)
	}
	accepted, token, err := s.AcceptMembership(t.Context(), bob, "co")
	if err != nil || accepted.Status != authz.StatusActive || token == "" || membershipRow(t, s, "bob", "co") != "editor/active" {
		t.Fatalf("accept: %+v, %q, %v, row %q", accepted, token, err, membershipRow(t, s, "bob", "co"))
	}
	if _, _, err := s.AcceptMembership(t.Context(), bob, "co"); !errors.Is(err, authz.ErrConflict) {
		t.Errorf("accepting twice: %v, want ErrConflict", err)
	}
	// An accepted membership keeps its status through a role change.
	if stored, _, err := s.SetMember(t.Context(), boss, member("bob", "co", authz.RoleViewer)); err != nil || stored.Status != authz.StatusActive {
		t.Errorf("role change of an accepted membership: %+v, %v", stored, err)
	}

	if _, _, err := s.SetMember(t.Context(), boss, member("eve", "co", authz.RoleViewer)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeclineMembership(t.Context(), eve, "co"); err != nil || membershipRow(t, s, "eve", "co") != "" {
		t.Errorf("decline: %v, row %q; want the invitation gone", err, membershipRow(t, s, "eve", "co"))
	}

	entries, err := s.Audit(t.Context(), boss, "co", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	for _, want := range []string{"bob member.accept allowed", "eve member.decline allowed", "bob member.accept conflict"} {
		found := false
		for _, a := range actions {
			found = found || a == want
		}
		if !found {
			t.Errorf("audit trail %v lacks %q", actions, want)
		}
	}
}
