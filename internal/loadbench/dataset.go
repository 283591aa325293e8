package loadbench

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Sizes shape a generated data set.
type Sizes struct {
	Companies int
	// Depth bounds every company tree: a root and at most Depth-1 levels
	// of subsidiaries below it.
	Depth       int
	Users       int
	Memberships int
	// ListSizes asks for one user per entry who may read exactly that many
	// companies, for the list measurements.
	ListSizes []int
	Seed      uint64
}

const (
	// bigTreeShare of the companies form one tree, whose owners see about
	// 1,850 of 5,000 companies: the holding every SaaS has one of.
	bigTreeShare = 0.37
	// bigOwners own the big tree's root.
	bigOwners = 3
	// The other trees' sizes are drawn from an exponential distribution of
	// this mean, capped, so there are subtrees of every size up to a few
	// hundred to give list users their exact counts.
	meanTreeSize = 30
	maxTreeSize  = 400
	// maxMembershipsPerUser caps the skew of memberships over users: some
	// users are members of many companies, none of nearly all.
	maxMembershipsPerUser = 100
)

// Validate checks that a data set of these sizes can be generated.
func (s Sizes) Validate() error {
	var errs []error
	if s.Companies < 1 || s.Depth < 1 {
		errs = append(errs, fmt.Errorf("companies (%d) and depth (%d) must be positive", s.Companies, s.Depth))
	}
	special := bigOwners + len(s.ListSizes)
	if s.Users <= special {
		errs = append(errs, fmt.Errorf("users (%d) must be more than the %d special users (%d owners of the big tree, one per list size)", s.Users, special, bigOwners))
	}
	for _, n := range s.ListSizes {
		if n < 1 || n > s.Companies {
			errs = append(errs, fmt.Errorf("list size %d: want 1 to %d (the companies)", n, s.Companies))
		}
	}
	// Half the room, so that drawing a pair not taken yet stays cheap.
	if room := (s.Users - special) * perUserCap(s.Companies) / 2; s.Memberships < 0 || s.Memberships-special > room {
		errs = append(errs, fmt.Errorf("memberships (%d) must be 0 to about %d for %d users and %d companies", s.Memberships, room+special, s.Users, s.Companies))
	}
	return errors.Join(errs...)
}

func perUserCap(companies int) int { return max(1, min(maxMembershipsPerUser, companies/2)) }

// Dataset is a generated set of rows.
type Dataset struct {
	// Companies come parents first, as they must be inserted.
	Companies   []authz.Company
	Memberships []authz.Membership
	Users       []string
	// BigOwners own the root of the largest tree.
	BigOwners []string
	// ListUsers[i] may read exactly Sizes.ListSizes[i] companies.
	ListUsers []string
}

// Relationships are the edges the rows stand for, as the sync derives
// them.
func (d *Dataset) Relationships() []authz.Relationship {
	rels := make([]authz.Relationship, 0, len(d.Companies)+len(d.Memberships))
	for _, c := range d.Companies {
		if rel, ok := authz.ParentRelationship(c); ok {
			rels = append(rels, rel)
		}
	}
	for _, m := range d.Memberships {
		if rel, ok := authz.MembershipRelationship(m); ok {
			rels = append(rels, rel)
		}
	}
	return rels
}

// Leaves are the companies without subsidiaries.
func (d *Dataset) Leaves() []string {
	parents := map[string]bool{}
	for _, c := range d.Companies {
		parents[c.ParentID] = true
	}
	var leaves []string
	for _, c := range d.Companies {
		if !parents[c.ID] {
			leaves = append(leaves, c.ID)
		}
	}
	return leaves
}

// Generate makes a data set of the given sizes, the same for the same
// sizes and seed: one big tree and many small ones, owners of the big
// tree's root, the list users, then memberships skewed over the other users
// (every one of them a member somewhere while the budget lasts), with
// mixed roles and some inactive and pending rows.
func Generate(s Sizes) (*Dataset, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x7e4a47))
	f := growForest(rng, s.Companies, s.Depth)
	d := &Dataset{Companies: f.companies(), Users: make([]string, s.Users)}
	for i := range d.Users {
		d.Users[i] = fmt.Sprintf("user%06d@example.com", i)
	}
	g := &membershipGen{rng: rng, d: d, taken: map[[2]int32]bool{}, count: make([]int, s.Users), capacity: perUserCap(s.Companies)}
	next := int32(0)
	for range bigOwners {
		d.BigOwners = append(d.BigOwners, d.Users[next])
		g.add(next, 0, authz.RoleOwner, authz.StatusActive)
		next++
	}
	for _, size := range s.ListSizes {
		d.ListUsers = append(d.ListUsers, d.Users[next])
		for _, c := range f.cover(size) {
			g.add(next, c, authz.RoleViewer, authz.StatusActive)
		}
		next++
	}
	budget := s.Memberships - len(d.Memberships)
	if budget < 0 {
		return nil, fmt.Errorf("data set: %d memberships are fewer than the %d the owners and list users need", s.Memberships, len(d.Memberships))
	}
	g.fill(next, budget, len(d.Companies))
	return d, nil
}

// forest is the company trees, as indices: company i has ID companyID(i).
type forest struct {
	parent   []int32 // -1 for a root
	depth    []int32 // 1 for a root
	children [][]int32
	// size is how many companies a subtree holds, its root included.
	size []int32
}

func companyID(i int32) string { return fmt.Sprintf("c%06d", i) }

// growForest makes n companies: the big tree first (company 0 is its
// root), then trees of random sizes until n is reached.
func growForest(rng *rand.Rand, n, maxDepth int) *forest {
	f := &forest{}
	left := n - f.grow(rng, max(1, int(float64(n)*bigTreeShare)), maxDepth)
	for left > 0 {
		want := min(left, maxTreeSize, 1+int(rng.ExpFloat64()*meanTreeSize))
		left -= f.grow(rng, want, maxDepth)
	}
	f.size = make([]int32, len(f.parent))
	// Children come after their parents, so one pass from the end sums
	// every subtree.
	for i := len(f.parent) - 1; i >= 0; i-- {
		f.size[i]++
		if p := f.parent[i]; p >= 0 {
			f.size[p] += f.size[i]
		}
	}
	return f
}

// grow adds a tree of up to n companies and returns how many it added:
// each new company hangs under a company picked at random among those
// not at maxDepth yet, which gives bushy, uneven trees.
func (f *forest) grow(rng *rand.Rand, n, maxDepth int) int {
	open := []int32{f.add(-1)}
	if maxDepth <= 1 {
		open = nil
	}
	added := 1
	for ; added < n && len(open) > 0; added++ {
		c := f.add(open[rng.IntN(len(open))])
		if f.depth[c] < int32(maxDepth) {
			open = append(open, c)
		}
	}
	return added
}

func (f *forest) add(parent int32) int32 {
	c := int32(len(f.parent))
	f.parent = append(f.parent, parent)
	f.children = append(f.children, nil)
	depth := int32(1)
	if parent >= 0 {
		depth = f.depth[parent] + 1
		f.children[parent] = append(f.children[parent], c)
	}
	f.depth = append(f.depth, depth)
	return c
}

func (f *forest) companies() []authz.Company {
	out := make([]authz.Company, len(f.parent))
	for i, p := range f.parent {
		c := authz.Company{ID: companyID(int32(i)), Name: fmt.Sprintf("Company %d", i)}
		if p >= 0 {
			c.ParentID = companyID(p)
		}
		out[i] = c
	}
	return out
}

// cover picks disjoint subtrees that hold exactly target companies in
// all, largest first: what a user given a role on each of them sees.
func (f *forest) cover(target int) []int32 {
	bySize := make([]int32, len(f.parent))
	for i := range bySize {
		bySize[i] = int32(i)
	}
	slices.SortStableFunc(bySize, func(a, b int32) int { return cmp.Compare(f.size[b], f.size[a]) })
	// An ancestor is larger than its descendants and so considered first:
	// a company inside a picked subtree is marked taken before its turn.
	taken := make([]bool, len(f.parent))
	var picked []int32
	left := int32(target)
	for _, c := range bySize {
		if left == 0 {
			break
		}
		if taken[c] || f.size[c] > left {
			continue
		}
		picked = append(picked, c)
		left -= f.size[c]
		stack := []int32{c}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			taken[n] = true
			stack = append(stack, f.children[n]...)
		}
	}
	return picked
}

// membershipGen adds memberships, each (user, company) at most once.
type membershipGen struct {
	rng      *rand.Rand
	d        *Dataset
	taken    map[[2]int32]bool
	count    []int
	capacity int
}

func (g *membershipGen) add(user, company int32, role authz.Role, status authz.Status) bool {
	key := [2]int32{user, company}
	if g.taken[key] {
		return false
	}
	g.taken[key] = true
	g.count[user]++
	g.d.Memberships = append(g.d.Memberships, authz.Membership{
		UserID: g.d.Users[user], CompanyID: companyID(company), Role: role, Status: status,
	})
	return true
}

// Role and status mixes of the generated memberships.
var (
	roleMix   = []authz.Role{authz.RoleOwner, authz.RoleAdmin, authz.RoleEditor, authz.RoleViewer}
	roleOdds  = []int{10, 15, 30, 45}
	statusMix = []authz.Status{authz.StatusActive, authz.StatusInactive, authz.StatusPending}
	statusOdd = []int{90, 5, 5}
)

func weighted(rng *rand.Rand, odds []int) int {
	total := 0
	for _, o := range odds {
		total += o
	}
	n := rng.IntN(total)
	for i, o := range odds {
		if n < o {
			return i
		}
		n -= o
	}
	return len(odds) - 1
}

// fill adds n memberships for the users from first on: one each while they
// last, then to users drawn from a Zipf distribution (the first users of
// the range are the busiest), each in a random company.
func (g *membershipGen) fill(first int32, n, companies int) {
	users := int32(len(g.d.Users)) - first
	zipf := rand.NewZipf(g.rng, 1.1, 8, uint64(users-1))
	for i := range n {
		for {
			u := first + int32(zipf.Uint64())
			if i < int(users) {
				u = first + int32(i)
			} else if g.count[u] >= g.capacity {
				u = first + g.rng.Int32N(users)
			}
			if g.count[u] >= g.capacity {
				continue
			}
			role, status := roleMix[weighted(g.rng, roleOdds)], statusMix[weighted(g.rng, statusOdd)]
			if g.add(u, g.rng.Int32N(int32(companies)), role, status) {
				break
			}
		}
	}
}
