package app

import (
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/console"
)

// demoCompanies is the sample tree, parents before children: a holding with
// three levels of subsidiaries and an unrelated second tenant.
var demoCompanies = []authz.Company{
	{ID: "acme-holding", Name: "ACME Holding"},
	{ID: "acme-europe", Name: "ACME Europe", ParentID: "acme-holding"},
	{ID: "acme-americas", Name: "ACME Americas", ParentID: "acme-holding"},
	{ID: "acme-france", Name: "ACME France", ParentID: "acme-europe"},
	{ID: "acme-germany", Name: "ACME Germany", ParentID: "acme-europe"},
	{ID: "acme-paris", Name: "ACME Paris", ParentID: "acme-france"},
	{ID: "globex", Name: "Globex Corp"},
	{ID: "globex-labs", Name: "Globex Labs", ParentID: "globex"},
}

func demoMember(user, company string, role authz.Role, status authz.Status) authz.Membership {
	return authz.Membership{UserID: user, CompanyID: company, Role: role, Status: status}
}

// demoMemberships give users roles in several companies, inherited and
// direct, with one inactive and one pending membership. User IDs are email
// addresses, which SpiceDB cannot hold as they are.
var demoMemberships = []authz.Membership{
	demoMember("alice@acme.example", "acme-holding", authz.RoleOwner, authz.StatusActive),
	demoMember("bob@acme.example", "acme-holding", authz.RoleViewer, authz.StatusActive),
	demoMember("bob@acme.example", "acme-france", authz.RoleAdmin, authz.StatusActive),
	demoMember("carol@acme.example", "acme-europe", authz.RoleEditor, authz.StatusActive),
	demoMember("dave@acme.example", "acme-paris", authz.RoleViewer, authz.StatusInactive),
	demoMember("erin@globex.example", "globex", authz.RoleOwner, authz.StatusActive),
	demoMember("erin@globex.example", "acme-germany", authz.RoleViewer, authz.StatusActive),
	demoMember("frank@globex.example", "globex-labs", authz.RoleEditor, authz.StatusPending),
	demoMember("grace@acme.example", "acme-americas", authz.RoleAdmin, authz.StatusActive),
}

// demoExample is one question the demo asks and prints as a curl command.
type demoExample struct {
	user string
	why  string
	// Exactly one of check, listPermission, permissionsOf or grant is set.
	check          *authz.CheckRequest
	listPermission authz.Permission
	permissionsOf  string
	grant          *authz.Membership
	// wantStatus is the answer's status; 0 means 200.
	wantStatus int
	// authzen asks check through AuthZEN's evaluation route; explain asks
	// /v1/check to explain its answer.
	authzen, explain bool
	// groups go into the user's token, for the demo's platform role.
	groups []string
	// accept is a company whose invitation the user accepts.
	accept string
}

// demoGrant is user asking the management API to give member role in
// company.
func demoGrant(user, member, company string, role authz.Role, wantStatus int, why string) demoExample {
	return demoExample{user: user, why: why, wantStatus: wantStatus,
		grant: &authz.Membership{UserID: member, CompanyID: company, Role: role}}
}

func demoCheck(user string, p authz.Permission, company, why string) demoExample {
	return demoExample{user: user, why: why, check: &authz.CheckRequest{User: user, Permission: p, Company: company}}
}

// demoPlatformGroup is the identity-provider group the demo maps to a
// platform role, and demoPlatformRole that role.
const (
	demoGroupsClaim   = "groups"
	demoPlatformGroup = "support"
	demoPlatformRole  = authz.RoleViewer
)

// demoInvitation is shown when grants need consent: bob's grant to henry
// above is then an invitation.
var demoInvitation = demoExample{user: "henry@acme.example", accept: "acme-paris",
	why: "with --membership-consent=required bob's grant was an invitation (status pending): it grants nothing until henry accepts it"}

var demoExamples = []demoExample{
	demoCheck("alice@acme.example", authz.PermDelete, "acme-paris", "owner of acme-holding, inherited three levels down"),
	demoCheck("alice@acme.example", authz.PermRead, "globex", "another tenant: no existence leak, just false"),
	demoCheck("bob@acme.example", authz.PermManageMembers, "acme-paris", "viewer at the holding + admin at acme-france: roles add up"),
	demoCheck("bob@acme.example", authz.PermUpdate, "acme-germany", "only a viewer there (from the holding)"),
	demoCheck("carol@acme.example", authz.PermUpdate, "acme-paris", "editor of acme-europe"),
	demoCheck("carol@acme.example", authz.PermCreate, "acme-france", "editors cannot create"),
	demoCheck("dave@acme.example", authz.PermRead, "acme-paris", "membership is inactive"),
	{user: "erin@globex.example", why: "owner of globex, viewer of acme-germany", listPermission: authz.PermRead},
	demoCheck("frank@globex.example", authz.PermRead, "globex-labs", "membership is pending"),
	{user: "grace@acme.example", why: "admin of acme-americas", permissionsOf: "acme-americas"},
	demoGrant("bob@acme.example", "bob@acme.example", "acme-france", authz.RoleOwner, 403, "nobody changes their own membership: an admin cannot make himself owner"),
	demoGrant("bob@acme.example", "henry@acme.example", "acme-paris", authz.RoleEditor, 200, "admin of acme-france, inherited by acme-paris, may grant roles below owner"),
	demoGrant("bob@acme.example", "henry@acme.example", "acme-germany", authz.RoleEditor, 403, "bob is only a viewer of acme-germany"),
	{user: "bob@acme.example", why: "the same question in the OpenID AuthZEN 1.0 standard's shape", authzen: true,
		check: &authz.CheckRequest{User: "bob@acme.example", Permission: authz.PermManageMembers, Company: "acme-paris"}},
	{user: "carol@acme.example", why: "why not? the explanation lists her roles on the way up and the roles that would grant it", explain: true,
		check: &authz.CheckRequest{User: "carol@acme.example", Permission: authz.PermCreate, Company: "acme-france"}},
	{user: "sam@support.example", why: "no membership, but the token's groups hold \"support\", mapped by --platform-role support=viewer", groups: []string{demoPlatformGroup},
		check: &authz.CheckRequest{User: "sam@support.example", Permission: authz.PermRead, Company: "globex"}},
}

// demoConsoleSignIns are the sample users the console signs in with one
// click: one of each kind of access the sample data shows.
var demoConsoleSignIns = []string{
	"alice@acme.example", "bob@acme.example", "carol@acme.example", "erin@globex.example", "grace@acme.example",
}

// demoConsoleUsers labels each of demoConsoleSignIns with the roles its
// active memberships hold ("Bob, viewer of ACME Holding and admin of ACME
// France"), so that the labels follow the sample data.
func demoConsoleUsers() []console.DemoUser {
	names := map[string]string{}
	for _, c := range demoCompanies {
		names[c.ID] = c.Name
	}
	users := make([]console.DemoUser, 0, len(demoConsoleSignIns))
	for _, id := range demoConsoleSignIns {
		var holds []string
		for _, m := range demoMemberships {
			if m.UserID == id && m.Status == authz.StatusActive {
				holds = append(holds, string(m.Role)+" of "+names[m.CompanyID])
			}
		}
		name, _, _ := strings.Cut(id, "@")
		label := strings.ToUpper(name[:1]) + name[1:] + ", " + strings.Join(holds, " and ")
		users = append(users, console.DemoUser{ID: id, Label: label})
	}
	return users
}
