package authz_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestQuotas(t *testing.T) {
	q := authz.Quotas{MaxOwned: 3, MaxChildren: 2, MaxTreeSize: 10}
	tests := []struct {
		name   string
		change authz.CompanyChange
		want   string // "" allowed, else words of the refusal
	}{
		{"a root below the quota", authz.CompanyChange{Create: true, Quotas: q, ActorOwns: 2}, ""},
		{"a root at the quota", authz.CompanyChange{Create: true, Quotas: q, ActorOwns: 3}, "you own 3 companies"},
		{"no quota", authz.CompanyChange{Create: true, ActorOwns: 1 << 20}, ""},
		{"a child under a full parent", authz.CompanyChange{Create: true, NewParent: "p", ActorParentRole: authz.RoleAdmin, Quotas: q, NewParentChildren: 2}, "below it directly"},
		{"permission first: a stranger learns nothing of the parent", authz.CompanyChange{Create: true, NewParent: "p", Quotas: q, NewParentChildren: 2}, "needs create on the parent"},
		{"a move under a full parent", authz.CompanyChange{Move: true, NewParent: "p", HasParent: true, ActorRole: authz.RoleOwner,
			ActorParentRole: authz.RoleOwner, ActorCurrentParentRole: authz.RoleOwner, Quotas: q, NewParentChildren: 2}, "below it directly"},
		{"a move does not count what one owns", authz.CompanyChange{Move: true, NewParent: "p", HasParent: true, ActorRole: authz.RoleOwner,
			ActorParentRole: authz.RoleOwner, ActorCurrentParentRole: authz.RoleOwner, Quotas: q, ActorOwns: 99, NewParentChildren: 1}, ""},
		{"a child into a tree with room for one", authz.CompanyChange{Create: true, NewParent: "p", ActorParentRole: authz.RoleAdmin, Quotas: q, NewTreeSize: 9, TreeGrowth: 1}, ""},
		{"a child into a full tree", authz.CompanyChange{Create: true, NewParent: "p", ActorParentRole: authz.RoleAdmin, Quotas: q, NewTreeSize: 10, TreeGrowth: 1}, "tree would grow past 10"},
		{"a subtree too big for the tree it moves to", authz.CompanyChange{Move: true, NewParent: "p", HasParent: true, ActorRole: authz.RoleOwner,
			ActorParentRole: authz.RoleOwner, ActorCurrentParentRole: authz.RoleOwner, Quotas: q, NewTreeSize: 5, TreeGrowth: 6}, "tree would grow past 10"},
		{"a move within a full tree", authz.CompanyChange{Move: true, NewParent: "p", HasParent: true, ActorRole: authz.RoleOwner,
			ActorParentRole: authz.RoleOwner, ActorCurrentParentRole: authz.RoleOwner, Quotas: q, NewTreeSize: 10, TreeGrowth: 0}, ""},
		{"a full tree and no tree bound", authz.CompanyChange{Create: true, NewParent: "p", ActorParentRole: authz.RoleAdmin, NewTreeSize: 1 << 20, TreeGrowth: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authz.DecideCompanyChange(tt.change)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			case tt.want != "" && !strings.HasPrefix(tt.want, "needs") && !errors.Is(err, authz.ErrConflict):
				t.Errorf("a quota refusal %v is not a conflict", err)
			}
		})
	}
}
