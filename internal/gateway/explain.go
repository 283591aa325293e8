package gateway

import "github.com/tenantgate/tenantgate/internal/authz"

// explanationJSON is an authz.Explanation as the API sends it: the
// structure for programs and the same in words for people.
type explanationJSON struct {
	Allowed     bool           `json:"allowed"`
	Text        string         `json:"text"`
	Memberships []heldRoleJSON `json:"memberships"`
	// PlatformRole is the caller's platform role, when it has one.
	PlatformRole   *platformRoleJSON `json:"platform_role,omitempty"`
	RolesThatGrant []authz.Role      `json:"roles_that_grant"`
}

type heldRoleJSON struct {
	Company   string     `json:"company"`
	Role      authz.Role `json:"role"`
	Path      []string   `json:"path"`
	Inherited bool       `json:"inherited"`
	Grants    bool       `json:"grants"`
}

type platformRoleJSON struct {
	Group  string     `json:"group"`
	Role   authz.Role `json:"role"`
	Grants bool       `json:"grants"`
}

func explanationOf(e authz.Explanation) *explanationJSON {
	out := &explanationJSON{
		Allowed:        e.Allowed,
		Text:           e.String(),
		Memberships:    make([]heldRoleJSON, len(e.Memberships)),
		RolesThatGrant: e.Needs,
	}
	for i, h := range e.Memberships {
		out.Memberships[i] = heldRoleJSON{Company: h.Company, Role: h.Role, Path: h.Path, Inherited: h.Inherited(), Grants: h.Grants}
	}
	if e.Platform.Role != "" {
		out.PlatformRole = &platformRoleJSON{Group: e.Platform.Group, Role: e.Platform.Role, Grants: e.Platform.Grants(e.Permission)}
	}
	return out
}
