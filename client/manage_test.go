package client_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/client"
)

// collect drains a listing, failing t on its error.
func collect[T any](t *testing.T, seq func(yield func(T, error) bool)) []T {
	t.Helper()
	var all []T
	for it, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, it)
	}
	return all
}

func companyIDs(cs []client.Company) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func TestCompanies(t *testing.T) {
	t.Parallel()
	g := startGateway(t, treeSeed)

	t.Run("pages", func(t *testing.T) {
		for _, tc := range []struct {
			user     string
			perm     client.Permission
			pageSize int
			want     []string
		}{
			{"pat", "", 2, []string{"shop-1", "shop-2", "shop-3", "shop-4", "shop-5"}},
			{"pat", client.PermRead, 1, []string{"shop-1", "shop-2", "shop-3", "shop-4", "shop-5"}},
			{"pat", client.PermUpdate, 2, nil},
			{"carol", client.PermUpdate, 2, []string{"europe", "france", "paris", "zürich/sub"}},
			{"bob", client.PermManageMembers, 0, []string{"france", "paris"}},
		} {
			t.Run(tc.user+"/"+string(tc.perm), func(t *testing.T) {
				got := collect(t, g.as(t, tc.user).Companies(t.Context(), client.CompaniesQuery{Permission: tc.perm, PageSize: tc.pageSize}))
				if ids := companyIDs(got); !slices.Equal(ids, tc.want) {
					t.Errorf("companies %v, want %v", ids, tc.want)
				}
			})
		}
	})

	t.Run("a page holds at most its size and names its next", func(t *testing.T) {
		pat := g.as(t, "pat")
		first, err := pat.ListCompanies(t.Context(), client.CompaniesQuery{PageSize: 2}, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Companies) > 2 || first.NextCursor == "" {
			t.Fatalf("first page %+v", first)
		}
		if first.Companies[0] != (client.Company{ID: "shop-1", Name: "Shop 1"}) {
			t.Errorf("first company %+v", first.Companies[0])
		}
	})

	t.Run("stopping early asks no further page", func(t *testing.T) {
		var seen []string
		for co, err := range g.as(t, "pat").Companies(t.Context(), client.CompaniesQuery{PageSize: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			if seen = append(seen, co.ID); len(seen) == 2 {
				break
			}
		}
		if !slices.Equal(seen, []string{"shop-1", "shop-2"}) {
			t.Errorf("seen %v", seen)
		}
	})

	t.Run("a failure ends the iteration", func(t *testing.T) {
		var errs int
		for co, err := range g.as(t, "pat").Companies(t.Context(), client.CompaniesQuery{Permission: "fly"}) {
			if err == nil || co != (client.Company{}) {
				t.Fatalf("yielded %+v, %v", co, err)
			}
			if !client.IsBadRequest(err) {
				t.Errorf("error %v, want 400", err)
			}
			errs++
		}
		if errs != 1 {
			t.Errorf("%d errors yielded, want 1", errs)
		}
	})
}

// TestManagement writes through the management API and reads every write
// back at once with its consistency token: no polling, since a read given
// a write's token must reflect it.
func TestManagement(t *testing.T) {
	t.Parallel()
	g := startGateway(t, treeSeed)
	ctx := t.Context()
	alice, bob, dana := g.as(t, "alice"), g.as(t, "bob"), g.as(t, "dana")

	created, err := alice.CreateCompany(ctx, client.NewCompany{ID: "lyon", Name: "Lyon", ParentID: "france"})
	if err != nil {
		t.Fatal(err)
	}
	if created.Company != (client.Company{ID: "lyon", Name: "Lyon", ParentID: "france"}) || created.ConsistencyToken == "" {
		t.Fatalf("created %+v", created)
	}

	t.Run("a new company is listed at its token", func(t *testing.T) {
		got := collect(t, bob.Companies(ctx, client.CompaniesQuery{Permission: client.PermManageMembers, ConsistencyToken: created.ConsistencyToken}))
		if ids := companyIDs(got); !slices.Equal(ids, []string{"france", "lyon", "paris"}) {
			t.Errorf("bob manages %v", ids)
		}
	})

	t.Run("a generated id", func(t *testing.T) {
		root, err := dana.CreateCompany(ctx, client.NewCompany{Name: "Dana's"})
		if err != nil {
			t.Fatal(err)
		}
		if root.ID == "" || root.ParentID != "" {
			t.Fatalf("created %+v", root)
		}
		set, err := dana.Permissions(ctx, client.PermissionsQuery{Company: root.ID, ConsistencyToken: root.ConsistencyToken})
		if err != nil || !set.Allows(client.PermManageOwners) {
			t.Errorf("the creator's rights on %s: %+v, %v", root.ID, set.Permissions, err)
		}
	})

	put, err := bob.PutMember(ctx, "lyon", "dana", client.RoleEditor, "")
	if err != nil {
		t.Fatal(err)
	}
	if put.Membership != (client.Membership{UserID: "dana", CompanyID: "lyon", Role: client.RoleEditor, Status: client.StatusActive}) || put.ConsistencyToken == "" {
		t.Fatalf("put %+v", put)
	}

	t.Run("a membership is checked at its token", func(t *testing.T) {
		d, err := dana.Check(ctx, client.Check{Permission: client.PermUpdate, Company: "lyon", ConsistencyToken: put.ConsistencyToken})
		if err != nil || !d.Allowed {
			t.Errorf("dana update lyon: %+v, %v", d, err)
		}
		bulk, err := g.service(t).CheckBulk(ctx, client.BulkCheck{Subject: "dana", ConsistencyToken: put.ConsistencyToken,
			Items: []client.CheckItem{{Permission: client.PermUpdate, Company: "lyon"}, {Permission: client.PermDelete, Company: "lyon"}}})
		if err != nil || !bulk.Allowed(client.PermUpdate, "lyon") || bulk.Allowed(client.PermDelete, "lyon") {
			t.Errorf("bulk for dana: %+v, %v", bulk, err)
		}
	})

	t.Run("members", func(t *testing.T) {
		members, err := bob.Members(ctx, "lyon")
		if err != nil {
			t.Fatal(err)
		}
		want := []client.Membership{
			{UserID: "alice", CompanyID: "lyon", Role: client.RoleOwner, Status: client.StatusActive},
			{UserID: "dana", CompanyID: "lyon", Role: client.RoleEditor, Status: client.StatusActive},
		}
		if !slices.Equal(members, want) {
			t.Errorf("members %+v, want %+v", members, want)
		}
		effective, err := bob.EffectiveMembers(ctx, "lyon", put.ConsistencyToken)
		if err != nil {
			t.Fatal(err)
		}
		byUser := map[string]client.EffectiveMember{}
		for _, m := range effective {
			byUser[m.UserID] = m
		}
		for user, role := range map[string]client.Role{"alice": client.RoleOwner, "bob": client.RoleAdmin, "carol": client.RoleEditor, "dana": client.RoleEditor} {
			if byUser[user].Role != role {
				t.Errorf("%s: %+v, want role %s", user, byUser[user], role)
			}
		}
		if via := byUser["bob"].Via; !slices.Contains(via, client.Access{CompanyID: "france", Role: client.RoleAdmin, Inherited: true}) {
			t.Errorf("bob's access via %+v", via)
		}
	})

	t.Run("rename and move", func(t *testing.T) {
		renamed, err := bob.UpdateCompany(ctx, "lyon", client.CompanyPatch{Name: "Lyon (FR)"})
		if err != nil {
			t.Fatal(err)
		}
		if renamed.Name != "Lyon (FR)" || renamed.ParentID != "france" || renamed.ConsistencyToken == "" {
			t.Errorf("renamed %+v", renamed)
		}
		// Out of the tree: it then needs an owner of its own, so alice
		// (owner above it, and its creator) moves it.
		moved, err := alice.UpdateCompany(ctx, "lyon", client.CompanyPatch{Move: true})
		if err != nil {
			t.Fatal(err)
		}
		if moved.ParentID != "" {
			t.Errorf("moved %+v", moved)
		}
		d, err := bob.Check(ctx, client.Check{Permission: client.PermRead, Company: "lyon", ConsistencyToken: moved.ConsistencyToken})
		if err != nil || d.Allowed {
			t.Errorf("bob reads lyon after the move: %+v, %v", d, err)
		}
		back, err := alice.UpdateCompany(ctx, "lyon", client.CompanyPatch{Move: true, ParentID: "france"})
		if err != nil || back.ParentID != "france" {
			t.Fatalf("moved back: %+v, %v", back, err)
		}
	})

	t.Run("removal is checked at its token", func(t *testing.T) {
		token, err := alice.DeleteMember(ctx, "lyon", "dana")
		if err != nil {
			t.Fatal(err)
		}
		d, err := dana.Check(ctx, client.Check{Permission: client.PermRead, Company: "lyon", ConsistencyToken: token})
		if err != nil || d.Allowed {
			t.Errorf("dana reads lyon after her removal: %+v, %v", d, err)
		}
	})

	t.Run("audit", func(t *testing.T) {
		entries := collect(t, alice.Audit(ctx, "lyon", 2))
		var actions []string
		for _, e := range entries {
			if e.CompanyID != "lyon" || e.Outcome != "allowed" || e.At.IsZero() {
				t.Errorf("entry %+v", e)
			}
			actions = append(actions, e.Action+" "+e.Actor)
		}
		want := []string{"member.remove alice", "company.update alice", "company.update alice", "company.update bob", "member.set bob", "company.create alice"}
		if !slices.Equal(actions, want) {
			t.Errorf("audit trail, newest first: %q, want %q", actions, want)
		}
		page, err := alice.ListAudit(ctx, "lyon", 2, "")
		if err != nil || len(page.Entries) != 2 || page.NextCursor == "" {
			t.Errorf("first page of 2: %+v, %v", page, err)
		}
	})

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := alice.PutMember(ctx, "lyon", "erin", client.RoleViewer, client.StatusPending); err == nil {
			t.Error("a write with a cancelled context succeeded")
		}
	})
}
