package authz

import (
	"fmt"
	"slices"
	"strings"
)

// Principal is a verified caller: the user a token names and the groups it
// carries. Groups come from the token's signed claims only, never from a
// request body.
type Principal struct {
	Subject string
	Groups  []string
}

// PlatformRoles maps identity-provider groups to a role held on every
// company (the --platform-role flags): the static group rules ("members of
// Admin may read everything") that tokens carry and memberships cannot say.
type PlatformRoles map[string]Role

// ParsePlatformRoles reads GROUP=ROLE specifications. A group named twice is
// refused rather than resolved, since either reading could be the mistake.
func ParsePlatformRoles(specs []string) (PlatformRoles, error) {
	roles := PlatformRoles{}
	for _, spec := range specs {
		group, role, ok := strings.Cut(spec, "=")
		if !ok || group == "" {
			return nil, fmt.Errorf("%w: platform role %q: want GROUP=ROLE", ErrInvalid, spec)
		}
		r, err := ParseRole(role)
		if err != nil {
			return nil, fmt.Errorf("platform role %q: %w", spec, err)
		}
		if _, dup := roles[group]; dup {
			return nil, fmt.Errorf("%w: platform role: group %q is mapped twice", ErrInvalid, group)
		}
		roles[group] = r
	}
	return roles, nil
}

// PlatformGrant is the role a caller holds on every company through one of
// its groups; the zero value is none.
type PlatformGrant struct {
	Group string
	Role  Role
}

// Grants reports whether the platform role grants p.
func (g PlatformGrant) Grants(p Permission) bool { return g.Role != "" && g.Role.Grants(p) }

// For is the strongest platform role among groups, with the group it comes
// from (the first in sorted order among equals, so the answer does not
// depend on the order of the token's claim).
func (pr PlatformRoles) For(groups []string) PlatformGrant {
	var best PlatformGrant
	for _, g := range slices.Sorted(slices.Values(groups)) {
		r, ok := pr[g]
		if ok && (best.Role == "" || rank(r) < rank(best.Role)) {
			best = PlatformGrant{Group: g, Role: r}
		}
	}
	return best
}

// Actor is who makes a management request: a user, with the platform role
// its token gives it (zero for none).
type Actor struct {
	ID       string
	Platform PlatformGrant
}
