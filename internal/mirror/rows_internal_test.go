package mirror

import (
	"errors"
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// TestChange maps row changes to relationship updates: the old row's edge
// goes, the new row's comes, and a row that cannot be mapped is reported
// alone, never taking the other side of its change with it.
func TestChange(t *testing.T) {
	member := func(user, company, role, status string) row {
		return row{"id": "m1", "user_id": user, "company_id": company, "role": role, "status": status}
	}
	grant := func(op authz.Op, user, company, role string) authz.Update {
		return authz.Update{Op: op, Rel: authz.Relationship{Resource: company, Relation: role, SubjectType: authz.TypeUser, SubjectID: user}}
	}
	parent := func(op authz.Op, company, parentID string) authz.Update {
		return authz.Update{Op: op, Rel: authz.Relationship{Resource: company, Relation: authz.RelationParent, SubjectType: authz.TypeCompany, SubjectID: parentID}}
	}
	for _, tc := range []struct {
		name         string
		table        string
		old, new     row
		want         []authz.Update
		wantSkipped  int
		wantSkipKind error
	}{
		{"membership inserted", tableMemberships, nil, member("ann", "acme", "editor", "active"),
			[]authz.Update{grant(authz.OpTouch, "ann", "acme", "editor")}, 0, nil},
		{"membership deleted", tableMemberships, member("ann", "acme", "editor", "active"), nil,
			[]authz.Update{grant(authz.OpDelete, "ann", "acme", "editor")}, 0, nil},
		{"role changed", tableMemberships, member("ann", "acme", "editor", "active"), member("ann", "acme", "owner", "active"),
			[]authz.Update{grant(authz.OpDelete, "ann", "acme", "editor"), grant(authz.OpTouch, "ann", "acme", "owner")}, 0, nil},
		{"deactivated: only the delete", tableMemberships, member("ann", "acme", "editor", "active"), member("ann", "acme", "editor", "inactive"),
			[]authz.Update{grant(authz.OpDelete, "ann", "acme", "editor")}, 0, nil},
		{"pending grants nothing", tableMemberships, nil, member("ann", "acme", "owner", "pending"), nil, 0, nil},
		{"moved to another company", tableMemberships, member("ann", "acme", "viewer", "active"), member("ann", "globex", "viewer", "active"),
			[]authz.Update{grant(authz.OpDelete, "ann", "acme", "viewer"), grant(authz.OpTouch, "ann", "globex", "viewer")}, 0, nil},
		{"unknown role: the old edge still goes", tableMemberships, member("ann", "acme", "editor", "active"), member("ann", "acme", "superuser", "active"),
			[]authz.Update{grant(authz.OpDelete, "ann", "acme", "editor")}, 1, authz.ErrInvalid},
		{"wildcard user is never a member", tableMemberships, nil, member("*", "acme", "owner", "active"), nil, 1, authz.ErrInvalid},
		{"company gets a parent", tableCompanies, row{"id": "kid"}, row{"id": "kid", "parent_id": "holding"},
			[]authz.Update{parent(authz.OpTouch, "kid", "holding")}, 0, nil},
		{"company reparented", tableCompanies, row{"id": "kid", "parent_id": "a"}, row{"id": "kid", "parent_id": "b"},
			[]authz.Update{parent(authz.OpDelete, "kid", "a"), parent(authz.OpTouch, "kid", "b")}, 0, nil},
		{"root company deleted", tableCompanies, row{"id": "root"}, nil, nil, 0, nil},
		{"a table that is not synced", "invoices", nil, row{"id": "x"}, nil, 1, authz.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			updates, skipped := change(tc.table, tc.old, tc.new)
			if !slices.Equal(updates, tc.want) {
				t.Errorf("updates = %+v, want %+v", updates, tc.want)
			}
			if len(skipped) != tc.wantSkipped {
				t.Fatalf("skipped %d rows (%+v), want %d", len(skipped), skipped, tc.wantSkipped)
			}
			for _, s := range skipped {
				if !errors.Is(s.err, tc.wantSkipKind) || s.table != tc.table {
					t.Errorf("skipped %+v, want a %v of %s", s, tc.wantSkipKind, tc.table)
				}
			}
		})
	}
}

// TestRelationsOfCoverEveryRole: a TRUNCATE of memberships removes every
// role's relationships, a new role included.
func TestRelationsOfCoverEveryRole(t *testing.T) {
	got := relationsOf(tableMemberships)
	for _, r := range authz.Roles {
		if !slices.Contains(got, string(r)) {
			t.Errorf("relationsOf(memberships) = %q lacks %s", got, r)
		}
	}
	if got := relationsOf(tableCompanies); !slices.Equal(got, []string{authz.RelationParent}) {
		t.Errorf("relationsOf(companies) = %q", got)
	}
}
