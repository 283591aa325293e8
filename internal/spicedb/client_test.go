package spicedb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/spicedb"
)

func startEmbedded(t *testing.T) *spicedb.Embedded {
	t.Helper()
	return spicedb.StartTestServer(t)
}

func member(company string, role authz.Role, user string) authz.Update {
	rel, _ := authz.MembershipRelationship(authz.Membership{UserID: user, CompanyID: company, Role: role, Status: authz.StatusActive})
	return authz.Update{Op: authz.OpTouch, Rel: rel}
}

func parent(child, parentID string) authz.Update {
	rel, _ := authz.ParentRelationship(authz.Company{ID: child, ParentID: parentID})
	return authz.Update{Op: authz.OpTouch, Rel: rel}
}

func write(t *testing.T, c *spicedb.Embedded, updates ...authz.Update) string {
	t.Helper()
	token, err := c.Write(context.Background(), updates)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if token == "" {
		t.Fatal("write returned no revision token")
	}
	return token
}

func TestCheckWithIDsOutsideSpiceDBAlphabet(t *testing.T) {
	e := startEmbedded(t)
	const (
		holding = "Holding AG (Zürich)"
		sub     = "sub.sidiary/1"
		user    = "alice.o'neil@example.com"
	)
	token := write(t, e, parent(sub, holding), member(holding, authz.RoleEditor, user))
	cons := authz.Consistency{AtLeastAsFresh: token}
	tests := []struct {
		company string
		perm    authz.Permission
		user    string
		want    bool
	}{
		{holding, authz.PermUpdate, user, true},
		{sub, authz.PermRead, user, true},
		{sub, authz.PermCreate, user, false},
		{sub, authz.PermRead, "bob@example.com", false},
		{"no such company", authz.PermRead, user, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.user, tt.perm, tt.company), func(t *testing.T) {
			got, checkedAt, err := e.Check(context.Background(), authz.CheckRequest{User: tt.user, Permission: tt.perm, Company: tt.company}, cons)
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			if got != tt.want {
				t.Errorf("allowed = %v, want %v", got, tt.want)
			}
			if checkedAt == "" {
				t.Error("no checked-at token")
			}
		})
	}
}

func TestWildcardUserIsRefused(t *testing.T) {
	e := startEmbedded(t)
	_, _, err := e.Check(context.Background(), authz.CheckRequest{User: "*", Permission: authz.PermRead, Company: "c"}, authz.Consistency{})
	if !errors.Is(err, authz.ErrInvalid) {
		t.Fatalf("check as * = %v, want ErrInvalid", err)
	}
	_, _, err = e.LookupCompanies(context.Background(), "*", authz.PermRead, authz.Consistency{}, 10, "")
	if !errors.Is(err, authz.ErrInvalid) {
		t.Fatalf("lookup as * = %v, want ErrInvalid", err)
	}
}

func TestCheckBulkMatchesSingleChecks(t *testing.T) {
	e := startEmbedded(t)
	token := write(t, e, parent("child", "root"), member("root", authz.RoleViewer, "u"), member("child", authz.RoleAdmin, "u"))
	cons := authz.Consistency{AtLeastAsFresh: token}
	var reqs []authz.CheckRequest
	for _, company := range []string{"root", "child", "unknown"} {
		for _, p := range authz.Permissions {
			reqs = append(reqs, authz.CheckRequest{User: "u", Permission: p, Company: company})
		}
	}
	bulk, _, err := e.CheckBulk(context.Background(), reqs, cons)
	if err != nil {
		t.Fatalf("check bulk: %v", err)
	}
	for i, r := range reqs {
		single, _, err := e.Check(context.Background(), r, cons)
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		if bulk[i] != single {
			t.Errorf("%+v: bulk %v, single %v", r, bulk[i], single)
		}
	}
	if !bulk[slices.IndexFunc(reqs, func(r authz.CheckRequest) bool { return r.Company == "child" && r.Permission == authz.PermDelete })] {
		t.Error("admin at child cannot delete child")
	}
}

func TestLookupCompaniesPaginatesSortedWithoutDuplicates(t *testing.T) {
	e := startEmbedded(t)
	// Every child is reachable twice (directly and through the root), which
	// makes SpiceDB's own cursors repeat results across pages.
	updates := []authz.Update{member("root", authz.RoleViewer, "pager")}
	want := []string{"root"}
	for i := range 25 {
		id := fmt.Sprintf("c.%02d", i)
		want = append(want, id)
		updates = append(updates, parent(id, "root"), member(id, authz.RoleViewer, "pager"))
	}
	slices.Sort(want)
	cons := authz.Consistency{AtLeastAsFresh: write(t, e, updates...)}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		ids, next, err := e.LookupCompanies(context.Background(), "pager", authz.PermRead, cons, 10, cursor)
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		if len(ids) > 10 {
			t.Fatalf("page of %d, limit 10", len(ids))
		}
		got = append(got, ids...)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("lookup listed %v, want %v (sorted, each once)", got, want)
	}
}

func TestWriteCollapsesAndBatches(t *testing.T) {
	e := startEmbedded(t)
	// More than one request's worth, with a relationship touched then
	// deleted in the same call: the last update must win.
	var updates []authz.Update
	for i := range spicedb.MaxUpdatesPerWrite + 500 {
		updates = append(updates, member(fmt.Sprintf("bulk-%d", i), authz.RoleViewer, "many"))
	}
	gone := member("bulk-7", authz.RoleViewer, "many")
	gone.Op = authz.OpDelete
	updates = append(updates, gone, gone)
	cons := authz.Consistency{AtLeastAsFresh: write(t, e, updates...)}
	for company, want := range map[string]bool{"bulk-0": true, "bulk-1499": true, "bulk-7": false} {
		got, _, err := e.Check(context.Background(), authz.CheckRequest{User: "many", Permission: authz.PermRead, Company: company}, cons)
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		if got != want {
			t.Errorf("read on %s = %v, want %v", company, got, want)
		}
	}
}

func TestStoppedServerFailsClosed(t *testing.T) {
	e := startEmbedded(t)
	write(t, e, member("c", authz.RoleOwner, "u"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	allowed, _, err := e.Check(ctx, authz.CheckRequest{User: "u", Permission: authz.PermRead, Company: "c"}, authz.Consistency{})
	if !errors.Is(err, authz.ErrUnavailable) || allowed {
		t.Fatalf("check on a stopped server = %v, %v; want false, ErrUnavailable", allowed, err)
	}
}
