package loadbench

import (
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// sampleTree is a holding with three levels of subsidiaries and a second
// tenant, the shape of the demo's data.
var sampleTree = []authz.Company{
	{ID: "holding"},
	{ID: "europe", ParentID: "holding"},
	{ID: "americas", ParentID: "holding"},
	{ID: "france", ParentID: "europe"},
	{ID: "germany", ParentID: "europe"},
	{ID: "paris", ParentID: "france"},
	{ID: "globex"},
	{ID: "labs", ParentID: "globex"},
}

func member(user, company string, role authz.Role, status authz.Status) authz.Membership {
	return authz.Membership{UserID: user, CompanyID: company, Role: role, Status: status}
}

var sampleMemberships = []authz.Membership{
	member("alice", "holding", authz.RoleOwner, authz.StatusActive),
	member("bob", "holding", authz.RoleViewer, authz.StatusActive),
	member("bob", "france", authz.RoleAdmin, authz.StatusActive),
	member("carol", "europe", authz.RoleEditor, authz.StatusActive),
	member("dave", "paris", authz.RoleViewer, authz.StatusInactive),
	member("erin", "globex", authz.RoleOwner, authz.StatusActive),
	member("erin", "germany", authz.RoleViewer, authz.StatusActive),
	member("frank", "labs", authz.RoleEditor, authz.StatusPending),
}

func TestBenchTruthAllowed(t *testing.T) {
	truth := NewTruth(sampleTree, sampleMemberships)
	tests := []struct {
		name    string
		user    string
		perm    authz.Permission
		company string
		want    bool
	}{
		{"a role holds on the company itself", "alice", authz.PermManageOwners, "holding", true},
		{"and three levels down", "alice", authz.PermDelete, "paris", true},
		{"but not in another tree", "alice", authz.PermRead, "globex", false},
		{"roles add up down the chain", "bob", authz.PermManageMembers, "paris", true},
		{"where only the weaker role reaches", "bob", authz.PermUpdate, "germany", false},
		{"the weaker role still grants its own", "bob", authz.PermRead, "germany", true},
		{"an admin cannot manage owners", "bob", authz.PermManageOwners, "france", false},
		{"an editor updates below", "carol", authz.PermUpdate, "paris", true},
		{"an editor cannot create", "carol", authz.PermCreate, "france", false},
		{"nothing flows up", "erin", authz.PermRead, "europe", false},
		{"a second tenant's role", "erin", authz.PermRead, "germany", true},
		{"inactive grants nothing", "dave", authz.PermRead, "paris", false},
		{"pending grants nothing", "frank", authz.PermRead, "labs", false},
		{"an unknown user", "zoe", authz.PermRead, "holding", false},
		{"an unknown company", "alice", authz.PermRead, "nowhere", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := truth.Allowed(tt.user, tt.perm, tt.company); got != tt.want {
				t.Errorf("Allowed(%s, %s, %s) = %t, want %t", tt.user, tt.perm, tt.company, got, tt.want)
			}
		})
	}
}

func TestBenchTruthCompanies(t *testing.T) {
	truth := NewTruth(sampleTree, sampleMemberships)
	tests := []struct {
		user string
		perm authz.Permission
		want []string
	}{
		{"alice", authz.PermRead, []string{"americas", "europe", "france", "germany", "holding", "paris"}},
		{"bob", authz.PermManageMembers, []string{"france", "paris"}},
		{"erin", authz.PermRead, []string{"germany", "globex", "labs"}},
		{"erin", authz.PermUpdate, []string{"globex", "labs"}},
		{"dave", authz.PermRead, nil},
		{"zoe", authz.PermRead, nil},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+string(tt.perm), func(t *testing.T) {
			if got := truth.Companies(tt.user, tt.perm); !slices.Equal(got, tt.want) {
				t.Errorf("Companies(%s, %s) = %v, want %v", tt.user, tt.perm, got, tt.want)
			}
		})
	}
}
