package authz

import (
	"fmt"
	"slices"
	"strings"
)

// ExplainFacts are the relationships an explanation is made of, all read
// at one SpiceDB revision: the chain of companies from the asked one up to
// its root, and the roles the user holds directly on each of them.
type ExplainFacts struct {
	// Chain is the asked company first, then its parent, up to a root.
	Chain []string
	// Roles are the user's roles held directly on companies of Chain.
	Roles map[string][]Role
}

// Explanation says why a user may or may not do a permission on a company.
type Explanation struct {
	User       string
	Permission Permission
	Company    string
	Allowed    bool
	// Memberships are every role the user holds on the company or above
	// it, nearest first; those with Grants set are why an allow is one.
	Memberships []HeldRole
	// Platform is the caller's platform role, when it has one.
	Platform PlatformGrant
	// Needs lists the roles that grant Permission, strongest first.
	Needs []Role
}

// HeldRole is one role a user holds on a company of the chain.
type HeldRole struct {
	Role Role
	// Company is where the role is held; Path runs from there down to the
	// asked company (just Company when it is held there).
	Company string
	Path    []string
	// Grants is true when Role grants the permission explained.
	Grants bool
}

// Inherited reports whether the role is held on an ancestor.
func (h HeldRole) Inherited() bool { return len(h.Path) > 1 }

// Explain is the pure decision over facts: a role on the company or any
// ancestor grants what the role table says, and so does a platform role.
// The gateway answers only when Allowed agrees with the answer it explains.
func Explain(user string, p Permission, facts ExplainFacts, platform PlatformGrant) Explanation {
	e := Explanation{User: user, Permission: p, Platform: platform, Allowed: platform.Grants(p)}
	if len(facts.Chain) > 0 {
		e.Company = facts.Chain[0]
	}
	for i, company := range facts.Chain {
		roles := slices.Clone(facts.Roles[company])
		slices.SortFunc(roles, func(a, b Role) int { return rank(a) - rank(b) })
		for _, r := range roles {
			path := slices.Clone(facts.Chain[:i+1])
			slices.Reverse(path)
			held := HeldRole{Role: r, Company: company, Path: path, Grants: r.Grants(p)}
			e.Allowed = e.Allowed || held.Grants
			e.Memberships = append(e.Memberships, held)
		}
	}
	for _, r := range Roles {
		if r.Grants(p) {
			e.Needs = append(e.Needs, r)
		}
	}
	return e
}

// String is the explanation in words, as `tenantgate explain` prints it.
func (e Explanation) String() string {
	var b strings.Builder
	verdict := "may not"
	if e.Allowed {
		verdict = "may"
	}
	fmt.Fprintf(&b, "%s %s %s on %s.\n", e.User, verdict, e.Permission, e.Company)
	if e.Platform.Role != "" {
		what := "which does not grant " + string(e.Permission)
		if e.Platform.Grants(e.Permission) {
			what = "which grants " + string(e.Permission) + " on every company"
		}
		fmt.Fprintf(&b, "  platform role %s from token group %q, %s\n", e.Platform.Role, e.Platform.Group, what)
	}
	if len(e.Memberships) == 0 {
		b.WriteString("  no membership in this company or above it\n")
	}
	for _, h := range e.Memberships {
		where := "held on " + h.Company
		if h.Inherited() {
			where = "held on " + h.Company + ", inherited through " + strings.Join(h.Path, " > ")
		}
		what := "grants " + string(e.Permission)
		if !h.Grants {
			what = "does not grant " + string(e.Permission)
		}
		fmt.Fprintf(&b, "  %s (%s) %s\n", h.Role, where, what)
	}
	if !e.Allowed {
		needs := make([]string, len(e.Needs))
		for i, r := range e.Needs {
			needs[i] = string(r)
		}
		fmt.Fprintf(&b, "  %s needs one of these roles on %s or above it: %s\n", e.Permission, e.Company, strings.Join(needs, ", "))
	}
	return b.String()
}
