package loadbench

import (
	"maps"
	"slices"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// roleSet holds roles as bits, in the order of authz.Roles: roles add up,
// so what a user may do on a company is the union of every role held on it
// or above it.
type roleSet uint8

func roleBit(r authz.Role) roleSet {
	return 1 << slices.Index(authz.Roles, r)
}

func (s roleSet) grants(p authz.Permission) bool {
	for i, r := range authz.Roles {
		if s&(1<<i) != 0 && r.Grants(p) {
			return true
		}
	}
	return false
}

// Truth is the ground truth every answer is checked against: for each user,
// the roles in effect on every company they see, computed from the rows
// with authz's role table only, and so independent of SpiceDB, of the
// permission index and of the SQL under test.
type Truth struct {
	roles map[string]map[string]roleSet
}

// NewTruth computes the roles in effect: an active membership's role holds
// on its company and on every company below it.
func NewTruth(companies []authz.Company, memberships []authz.Membership) *Truth {
	children := map[string][]string{}
	for _, c := range companies {
		if c.ParentID != "" {
			children[c.ParentID] = append(children[c.ParentID], c.ID)
		}
	}
	t := &Truth{roles: map[string]map[string]roleSet{}}
	for _, m := range memberships {
		if m.Status != authz.StatusActive {
			continue
		}
		seen := t.roles[m.UserID]
		if seen == nil {
			seen = map[string]roleSet{}
			t.roles[m.UserID] = seen
		}
		bit := roleBit(m.Role)
		stack := []string{m.CompanyID}
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			// A company that has the bit got it from a walk that also gave
			// it to everything below: nothing left to do there.
			if seen[c]&bit != 0 {
				continue
			}
			seen[c] |= bit
			stack = append(stack, children[c]...)
		}
	}
	return t
}

// Allowed is the answer to "may user do p on company?"; an unknown user or
// company is false.
func (t *Truth) Allowed(user string, p authz.Permission, company string) bool {
	return t.roles[user][company].grants(p)
}

// Companies lists, sorted, the companies on which user may do p.
func (t *Truth) Companies(user string, p authz.Permission) []string {
	var out []string
	for c, roles := range t.roles[user] {
		if roles.grants(p) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// seen lists, sorted, every company on which user holds some role.
func (t *Truth) seen(user string) []string {
	return slices.Sorted(maps.Keys(t.roles[user]))
}
