package index

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"unsafe"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// MaxDepth bounds every walk of the company tree, as SpiceDB's dispatch
// depth (50 by default) bounds its own: a chain longer than this is an
// error, never an answer. The store keeps chains far shorter.
const MaxDepth = 50

// maxSteps bounds the nodes one walk up may visit. A company has one parent
// in any state the store commits, but SpiceDB would accept several, and
// diamonds could make an unbounded walk exponential.
const maxSteps = 10_000

// errTooDeep is a walk that met MaxDepth or maxSteps: the index cannot tell,
// and the caller must ask SpiceDB.
var errTooDeep = errors.New("index: company chain exceeds the walk bound")

// roleSet holds roles as bits, in the order of authz.Roles. SpiceDB would
// store two role relationships for one user and company, so a set, not one
// role, is what mirrors it.
type roleSet uint8

func roleBit(relation string) (roleSet, bool) {
	i := slices.Index(authz.Roles, authz.Role(relation))
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// granting[p] is the set of roles that grant p, from the role table that
// TestSchemaMatchesRoleTable ties to schema/tenantgate.zed.
var granting = func() map[authz.Permission]roleSet {
	m := make(map[authz.Permission]roleSet, len(authz.Permissions))
	for _, p := range authz.Permissions {
		for i, r := range authz.Roles {
			if r.Grants(p) {
				m[p] |= 1 << i
			}
		}
	}
	return m
}()

// grant is one user's roles on one company.
type grant struct {
	company int32
	roles   roleSet
}

// Graph is the company tree and every user's direct roles, as SpiceDB
// holds them at one revision, with IDs interned to int32 so that a check is
// a walk up the tree with a binary search at each step. It is not safe for
// concurrent use; Index guards it.
//
// Interned IDs are never freed: a deleted company or user keeps its slot
// until the next full load, which bounds the waste by the churn since then.
type Graph struct {
	companyIDs map[string]int32
	companies  []string
	// parents are usually one or none; see maxSteps.
	parents  [][]int32
	children [][]int32
	userIDs  map[string]int32
	users    []string
	// grants per user, sorted by company.
	grants [][]grant

	relationships int
}

func newGraph() *Graph {
	return &Graph{companyIDs: map[string]int32{}, userIDs: map[string]int32{}}
}

// Build makes a Graph from relationships as SpiceDB exports them.
func Build(rels iter.Seq[authz.Relationship]) (*Graph, error) {
	g := newGraph()
	for rel := range rels {
		if err := g.Apply(authz.Update{Op: authz.OpTouch, Rel: rel}); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Relationships is how many relationships the graph holds.
func (g *Graph) Relationships() int { return g.relationships }

// Bytes estimates the memory the graph holds: its arrays by capacity, each
// ID string once, and a map entry per ID (a Go swiss-table slot plus its
// share of control bytes and empty slots, about 1.5 times the key and value).
func (g *Graph) Bytes() int64 {
	const (
		sliceHeader = int64(unsafe.Sizeof([]int32(nil)))
		strHeader   = int64(unsafe.Sizeof(""))
		mapEntry    = (strHeader + 4) * 3 / 2
		grantSize   = int64(unsafe.Sizeof(grant{}))
	)
	n := int64(cap(g.companies)+cap(g.users))*strHeader +
		int64(cap(g.parents)+cap(g.children)+cap(g.grants))*sliceHeader +
		int64(len(g.companyIDs)+len(g.userIDs))*mapEntry
	for _, id := range g.companies {
		n += int64(len(id))
	}
	for _, id := range g.users {
		n += int64(len(id))
	}
	for i := range g.parents {
		n += int64(cap(g.parents[i])+cap(g.children[i])) * 4
	}
	for _, gs := range g.grants {
		n += int64(cap(gs)) * grantSize
	}
	return n
}

func (g *Graph) company(id string) int32 {
	if c, ok := g.companyIDs[id]; ok {
		return c
	}
	c := int32(len(g.companies))
	g.companyIDs[id] = c
	g.companies = append(g.companies, id)
	g.parents = append(g.parents, nil)
	g.children = append(g.children, nil)
	return c
}

func (g *Graph) user(id string) int32 {
	if u, ok := g.userIDs[id]; ok {
		return u
	}
	u := int32(len(g.users))
	g.userIDs[id] = u
	g.users = append(g.users, id)
	g.grants = append(g.grants, nil)
	return u
}

// Apply makes one relationship update. Touches and deletes are idempotent,
// as in SpiceDB. A relation the schema does not have is an error: the index
// would otherwise answer without it.
func (g *Graph) Apply(u authz.Update) error {
	rel := u.Rel
	touch := u.Op == authz.OpTouch
	switch {
	case rel.Relation == authz.RelationParent && rel.SubjectType == authz.TypeCompany:
		child, parent := g.company(rel.Resource), g.company(rel.SubjectID)
		if touch {
			g.link(child, parent)
		} else {
			g.unlink(child, parent)
		}
		return nil
	case rel.SubjectType == authz.TypeUser:
		bit, ok := roleBit(rel.Relation)
		if !ok {
			break
		}
		company, user := g.company(rel.Resource), g.user(rel.SubjectID)
		if touch {
			g.addRole(user, company, bit)
		} else {
			g.removeRole(user, company, bit)
		}
		return nil
	}
	return fmt.Errorf("index: relationship %s#%s@%s:%s is not in tenantgate's schema", rel.Resource, rel.Relation, rel.SubjectType, rel.SubjectID)
}

func (g *Graph) link(child, parent int32) {
	if slices.Contains(g.parents[child], parent) {
		return
	}
	g.parents[child] = append(g.parents[child], parent)
	g.children[parent] = append(g.children[parent], child)
	g.relationships++
}

func (g *Graph) unlink(child, parent int32) {
	i := slices.Index(g.parents[child], parent)
	if i < 0 {
		return
	}
	g.parents[child] = slices.Delete(g.parents[child], i, i+1)
	j := slices.Index(g.children[parent], child)
	g.children[parent] = slices.Delete(g.children[parent], j, j+1)
	g.relationships--
}

func (g *Graph) findGrant(user, company int32) (int, bool) {
	return slices.BinarySearchFunc(g.grants[user], company, func(gr grant, c int32) int { return int(gr.company - c) })
}

func (g *Graph) addRole(user, company int32, bit roleSet) {
	i, found := g.findGrant(user, company)
	switch {
	case !found:
		g.grants[user] = slices.Insert(g.grants[user], i, grant{company: company, roles: bit})
	case g.grants[user][i].roles&bit != 0:
		return
	default:
		g.grants[user][i].roles |= bit
	}
	g.relationships++
}

func (g *Graph) removeRole(user, company int32, bit roleSet) {
	i, found := g.findGrant(user, company)
	if !found || g.grants[user][i].roles&bit == 0 {
		return
	}
	g.grants[user][i].roles &^= bit
	if g.grants[user][i].roles == 0 {
		g.grants[user] = slices.Delete(g.grants[user], i, i+1)
	}
	g.relationships--
}

// roles is the union of user's roles on company and on every ancestor, or
// only whether stop is met when stop is not zero: a check ends at the first
// granting role.
func (g *Graph) roles(user, company string, stop roleSet) (roleSet, error) {
	u, ok := g.userIDs[user]
	if !ok {
		return 0, nil
	}
	c, ok := g.companyIDs[company]
	if !ok {
		return 0, nil
	}
	held := g.grants[u]
	if len(held) == 0 {
		return 0, nil
	}
	type step struct {
		company int32
		depth   int
	}
	var (
		found roleSet
		stack = []step{{c, 0}}
		steps int
	)
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if steps++; s.depth >= MaxDepth || steps > maxSteps {
			return 0, errTooDeep
		}
		if i, ok := g.findGrant(u, s.company); ok {
			found |= held[i].roles
			if found&stop != 0 {
				return found, nil
			}
		}
		for _, p := range g.parents[s.company] {
			stack = append(stack, step{p, s.depth + 1})
		}
	}
	return found, nil
}

// Check reports whether user holds p on company, directly or through an
// ancestor.
func (g *Graph) Check(user string, p authz.Permission, company string) (bool, error) {
	want := granting[p]
	if want == 0 {
		return false, fmt.Errorf("index: %w: unknown permission %q", authz.ErrInvalid, p)
	}
	held, err := g.roles(user, company, want)
	return held&want != 0, err
}

// CheckBulk answers many checks; a run of checks of one user on one
// company (a permissions matrix) costs one walk.
func (g *Graph) CheckBulk(reqs []authz.CheckRequest) ([]bool, error) {
	allowed := make([]bool, len(reqs))
	var (
		held roleSet
		last authz.CheckRequest
	)
	for i, r := range reqs {
		want := granting[r.Permission]
		if want == 0 {
			return nil, fmt.Errorf("index: %w: unknown permission %q", authz.ErrInvalid, r.Permission)
		}
		if i == 0 || r.User != last.User || r.Company != last.Company {
			var err error
			if held, err = g.roles(r.User, r.Company, 0); err != nil {
				return nil, err
			}
			last = r
		}
		allowed[i] = held&want != 0
	}
	return allowed, nil
}

// Lookup lists, in ID order, up to limit companies on which user holds p
// whose IDs sort after cursor, and the cursor of the next page ("" after
// the last): the union of the subtrees under every company where a role of
// user grants p.
//
// A page walks every company the user reaches, but keeps only the limit+1
// smallest IDs after cursor (one more tells whether a page follows): a user
// who reads a huge tree costs each page time in the tree's size, and memory
// in the page's size and a bit per company, never a copy of the tree.
func (g *Graph) Lookup(user string, p authz.Permission, cursor string, limit int) ([]string, string, error) {
	want := granting[p]
	if want == 0 {
		return nil, "", fmt.Errorf("index: %w: unknown permission %q", authz.ErrInvalid, p)
	}
	u, ok := g.userIDs[user]
	if !ok {
		return nil, "", nil
	}
	seen := make([]uint64, (len(g.companies)+63)/64)
	// More than every company cannot be listed; the bound also keeps
	// limit+1 from overflowing.
	page := smallest{n: min(limit, len(g.companies)) + 1}
	for _, gr := range g.grants[u] {
		if gr.roles&want == 0 {
			continue
		}
		if err := g.descend(gr.company, 0, seen, func(c int32) {
			if id := g.companies[c]; id > cursor {
				page.offer(id)
			}
		}); err != nil {
			return nil, "", err
		}
	}
	ids := page.sorted()
	if len(ids) > limit {
		return ids[:limit], ids[limit-1], nil
	}
	return ids, "", nil
}

// smallest keeps the n smallest of the IDs offered to it, each offered
// once, in a max-heap: the largest kept is the one a smaller ID replaces.
type smallest struct {
	n    int
	heap []string
}

func (s *smallest) offer(id string) {
	switch {
	case len(s.heap) < s.n:
		s.heap = append(s.heap, id)
		s.up(len(s.heap) - 1)
	case id < s.heap[0]:
		s.heap[0] = id
		s.down(0)
	}
}

// up moves the ID at i towards the root while it is larger than its parent.
func (s *smallest) up(i int) {
	h := s.heap
	for i > 0 && h[(i-1)/2] < h[i] {
		h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
		i = (i - 1) / 2
	}
}

// down moves the ID at i towards the leaves while a child is larger.
func (s *smallest) down(i int) {
	h := s.heap
	for {
		largest, left, right := i, 2*i+1, 2*i+2
		if left < len(h) && h[left] > h[largest] {
			largest = left
		}
		if right < len(h) && h[right] > h[largest] {
			largest = right
		}
		if largest == i {
			return
		}
		h[i], h[largest] = h[largest], h[i]
		i = largest
	}
}

// sorted is the IDs kept, in order.
func (s *smallest) sorted() []string {
	slices.Sort(s.heap)
	return s.heap
}

// descend calls found once for company and each descendant not yet seen,
// a bit set over the company numbers.
func (g *Graph) descend(company int32, depth int, seen []uint64, found func(int32)) error {
	if depth >= MaxDepth {
		return errTooDeep
	}
	word, bit := company/64, uint64(1)<<(company%64)
	if seen[word]&bit != 0 {
		return nil
	}
	seen[word] |= bit
	found(company)
	for _, child := range g.children[company] {
		if err := g.descend(child, depth+1, seen, found); err != nil {
			return err
		}
	}
	return nil
}
