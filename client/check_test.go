package client_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/client"
)

func TestChecks(t *testing.T) {
	t.Parallel()
	g := startGateway(t, treeSeed)

	t.Run("check", func(t *testing.T) {
		for _, tc := range []struct {
			user    string
			perm    client.Permission
			company string
			want    bool
		}{
			{"alice", client.PermManageOwners, "paris", true},
			{"bob", client.PermManageMembers, "paris", true},
			{"bob", client.PermUpdate, "europe", false},
			{"carol", client.PermUpdate, "paris", true},
			{"carol", client.PermRead, "holding", false},
			{"erin", client.PermRead, "paris", false}, // inactive membership
			{"alice", client.PermRead, "no-such-company", false},
		} {
			t.Run(tc.user+"/"+string(tc.perm)+"/"+tc.company, func(t *testing.T) {
				d, err := g.as(t, tc.user).Check(t.Context(), client.Check{Permission: tc.perm, Company: tc.company})
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed != tc.want {
					t.Errorf("allowed = %v, want %v", d.Allowed, tc.want)
				}
				if d.Permission != tc.perm || d.Company != tc.company || d.Subject != "" {
					t.Errorf("decision %+v is not about the check", d)
				}
				if d.ConsistencyToken == "" || d.Explanation != nil {
					t.Errorf("decision %+v: want a consistency token and no explanation", d)
				}
			})
		}
	})

	t.Run("a check's token is accepted by the next read", func(t *testing.T) {
		bob := g.as(t, "bob")
		first, err := bob.Check(t.Context(), client.Check{Permission: client.PermRead, Company: "france"})
		if err != nil {
			t.Fatal(err)
		}
		again, err := bob.Check(t.Context(), client.Check{Permission: client.PermRead, Company: "france", ConsistencyToken: first.ConsistencyToken})
		if err != nil || !again.Allowed {
			t.Fatalf("check at %s: %+v, %v", first.ConsistencyToken, again, err)
		}
		set, err := bob.Permissions(t.Context(), client.PermissionsQuery{Company: "france", ConsistencyToken: first.ConsistencyToken})
		if err != nil || !set.Allows(client.PermRead) {
			t.Fatalf("permissions at %s: %+v, %v", first.ConsistencyToken, set, err)
		}
	})

	t.Run("the context's deadline", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		d, err := g.service(t).Check(ctx, client.Check{Subject: "bob", Permission: client.PermRead, Company: "paris"})
		if !errors.Is(err, context.DeadlineExceeded) || d.Allowed {
			t.Errorf("check: %+v, %v; want a deadline exceeded and no allow", d, err)
		}
	})

	t.Run("bulk", func(t *testing.T) {
		items := []client.CheckItem{
			{Permission: client.PermManageMembers, Company: "paris"},
			{Permission: client.PermManageMembers, Company: "europe"},
			{Permission: client.PermRead, Company: "holding"},
			{Permission: client.PermRead, Company: "globex"},
		}
		d, err := g.as(t, "bob").CheckBulk(t.Context(), client.BulkCheck{Items: items})
		if err != nil {
			t.Fatal(err)
		}
		want := []bool{true, false, true, false}
		if len(d.Results) != len(want) {
			t.Fatalf("%d results, want %d", len(d.Results), len(want))
		}
		for i, r := range d.Results {
			if r.Allowed != want[i] || r.Permission != items[i].Permission || r.Company != items[i].Company {
				t.Errorf("result %d = %+v, want %+v allowed=%v", i, r, items[i], want[i])
			}
		}
		if !d.Allowed(client.PermManageMembers, "paris") || d.Allowed(client.PermDelete, "paris") {
			t.Error("Allowed reads the wrong result, or allows a question not asked")
		}
		if d.ConsistencyToken == "" {
			t.Error("no consistency token")
		}
	})

	t.Run("permissions", func(t *testing.T) {
		for _, tc := range []struct {
			user, company string
			want          []client.Permission
		}{
			{"alice", "paris", client.AllPermissions()},
			{"bob", "paris", []client.Permission{client.PermRead, client.PermUpdate, client.PermCreate, client.PermDelete, client.PermManageMembers}},
			{"carol", "europe", []client.Permission{client.PermRead, client.PermUpdate}},
			{"carol", "globex", nil},
			{"carol", "zürich/sub", []client.Permission{client.PermRead, client.PermUpdate}},
		} {
			t.Run(tc.user+"/"+tc.company, func(t *testing.T) {
				set, err := g.as(t, tc.user).Permissions(t.Context(), client.PermissionsQuery{Company: tc.company})
				if err != nil {
					t.Fatal(err)
				}
				if len(set.Permissions) != len(client.AllPermissions()) {
					t.Errorf("matrix %v does not hold every permission", set.Permissions)
				}
				for _, p := range client.AllPermissions() {
					if got, want := set.Allows(p), slices.Contains(tc.want, p); got != want {
						t.Errorf("%s = %v, want %v", p, got, want)
					}
				}
				if set.Company != tc.company || set.ConsistencyToken == "" || set.Explanations != nil {
					t.Errorf("answer %+v", set)
				}
			})
		}
	})

	t.Run("explain", func(t *testing.T) {
		d, err := g.as(t, "bob").Check(t.Context(), client.Check{Permission: client.PermManageMembers, Company: "paris", Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		ex := d.Explanation
		if ex == nil || !ex.Allowed || !d.Allowed {
			t.Fatalf("decision %+v, explanation %+v", d, ex)
		}
		if !strings.Contains(ex.Text, "bob may manage_members on paris") {
			t.Errorf("text %q", ex.Text)
		}
		wantHeld := []client.HeldRole{
			{Company: "france", Role: client.RoleAdmin, Path: []string{"france", "paris"}, Inherited: true, Grants: true},
			{Company: "holding", Role: client.RoleViewer, Path: []string{"holding", "europe", "france", "paris"}, Inherited: true, Grants: false},
		}
		if !slices.EqualFunc(ex.Memberships, wantHeld, equalHeld) {
			t.Errorf("memberships %+v, want %+v", ex.Memberships, wantHeld)
		}
		if !slices.Equal(ex.RolesThatGrant, []client.Role{client.RoleOwner, client.RoleAdmin}) || ex.PlatformRole != nil {
			t.Errorf("roles that grant %v, platform role %+v", ex.RolesThatGrant, ex.PlatformRole)
		}

		set, err := g.as(t, "carol").Permissions(t.Context(), client.PermissionsQuery{Company: "paris", Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(set.Explanations)); len(got) != len(client.AllPermissions()) {
			t.Fatalf("explanations of %v", got)
		}
		for p, ex := range set.Explanations {
			if ex.Allowed != set.Allows(p) {
				t.Errorf("explanation of %s says %v, the matrix %v", p, ex.Allowed, set.Allows(p))
			}
		}
	})

	t.Run("service token on behalf of a user", func(t *testing.T) {
		svc := g.service(t)
		for _, tc := range []struct {
			subject string
			want    bool
		}{{"bob", true}, {"carol", false}} {
			d, err := svc.Check(t.Context(), client.Check{Subject: tc.subject, Permission: client.PermManageMembers, Company: "paris"})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.want || d.Subject != tc.subject {
				t.Errorf("%s: %+v, want allowed=%v", tc.subject, d, tc.want)
			}
		}
		bulk, err := svc.CheckBulk(t.Context(), client.BulkCheck{Subject: "carol", Items: []client.CheckItem{
			{Permission: client.PermUpdate, Company: "paris"}, {Permission: client.PermCreate, Company: "paris"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if !bulk.Allowed(client.PermUpdate, "paris") || bulk.Allowed(client.PermCreate, "paris") {
			t.Errorf("bulk for carol: %+v", bulk.Results)
		}
		d, err := svc.Check(t.Context(), client.Check{Subject: "carol", Permission: client.PermUpdate, Company: "paris", Explain: true})
		if err != nil || d.Explanation == nil || !strings.HasPrefix(d.Explanation.Text, "carol may update on paris") {
			t.Errorf("explained for carol: %+v, %v", d, err)
		}
		// A user's token never becomes the service's: As drops it.
		if _, err := svc.As(g.token(t, "bob")).Check(t.Context(), client.Check{Subject: "alice", Permission: client.PermRead, Company: "paris"}); !client.IsForbidden(err) {
			t.Errorf("a user's check about someone else: %v, want 403", err)
		}
	})
}

func equalHeld(a, b client.HeldRole) bool {
	return a.Company == b.Company && a.Role == b.Role && slices.Equal(a.Path, b.Path) && a.Inherited == b.Inherited && a.Grants == b.Grants
}
