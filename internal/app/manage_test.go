package app_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of the management API (docs/design.md, "Grant rules for the management
// API") against the real `tenantgate serve`: Postgres decides, SpiceDB
// answers the effective-members listing.

// designGrants is the role table of docs/design.md written out once more, on
// purpose not taken from package authz: the expected answers below must come
// from the written rules, not from the code under test.
var designGrants = map[string][]string{
	"owner":  {"read", "update", "create", "delete", "manage_members", "manage_owners"},
	"admin":  {"read", "update", "create", "delete", "manage_members"},
	"editor": {"read", "update"},
	"viewer": {"read"},
}

func grants(role, perm string) bool { return slices.Contains(designGrants[role], perm) }

// mustSend is send for the test's own goroutine.
func (s *stack) mustSend(t *testing.T, method, path, bearer string, body []byte, header http.Header) answer {
	t.Helper()
	a, err := s.send(method, path, bearer, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeAnswer(t *testing.T, a answer, out any) {
	t.Helper()
	if err := json.Unmarshal(a.body, out); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
}

// problemOf checks that a is a problem document with the given status and
// returns it without its request_id, the one member that differs between
// otherwise identical answers.
func problemOf(t *testing.T, a answer, status int) map[string]any {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var doc map[string]any
	decodeAnswer(t, a, &doc)
	if doc["status"] != float64(status) {
		t.Errorf("problem status %v, want %d", doc["status"], status)
	}
	delete(doc, "request_id")
	return doc
}

func membersPath(company string) string {
	return "/v1/companies/" + url.PathEscape(company) + "/members"
}

func memberPath(company, user string) string {
	return membersPath(company) + "/" + url.PathEscape(user)
}

// dumpRows prints every company and membership, updated_at included, so that
// any write at all (even one that stores the same values) shows.
func (s *stack) dumpRows(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.db.Query(ctx, `
		select format('company %s name=%s parent=%s', id, name, coalesce(parent_id, '-')) from companies
		union all
		select format('member %s in %s id=%s %s/%s updated=%s', user_id, company_id, id, role, status, updated_at)
		from company_memberships
		order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// memberState is a membership's role and status; the zero value is no
// membership.
type memberState struct{ role, status string }

func (m memberState) exists() bool      { return m.role != "" }
func (m memberState) activeOwner() bool { return m.role == "owner" && m.status == "active" }

func (m memberState) String() string {
	switch {
	case !m.exists():
		return "none"
	case m.status == "active":
		return m.role
	}
	return m.status + " " + m.role
}

var (
	activeOwner   = memberState{"owner", "active"}
	inactiveOwner = memberState{"owner", "inactive"}
)

// matrixActor is what the actor holds: a membership on its tenant's root,
// which is the company under test (direct) or its parent (inherited).
type matrixActor struct {
	name string
	m    memberState
}

var matrixActors = []matrixActor{
	{"owner", activeOwner},
	{"admin", memberState{"admin", "active"}},
	{"editor", memberState{"editor", "active"}},
	{"viewer", memberState{"viewer", "active"}},
	{"none", memberState{}},
	// Only active memberships grant: an inactive owner is nobody.
	{"inactive owner", inactiveOwner},
}

// matrixTarget is the target's membership in the company under test before
// the request; last marks the company's only active owner.
type matrixTarget struct {
	name string
	m    memberState
	last bool
}

var matrixTargets = []matrixTarget{
	{"none", memberState{}, false},
	{"owner", activeOwner, false},
	{"admin", memberState{"admin", "active"}, false},
	{"editor", memberState{"editor", "active"}, false},
	{"viewer", memberState{"viewer", "active"}, false},
	{"inactive owner", inactiveOwner, false},
	{"last owner", activeOwner, true},
}

// matrixChange is the request: PUT a role (status left to its default),
// PUT the same role with another status, or DELETE.
type matrixChange struct {
	name   string
	grant  string
	status bool
	remove bool
}

var matrixChanges = []matrixChange{
	{name: "grant owner", grant: "owner"},
	{name: "grant admin", grant: "admin"},
	{name: "grant editor", grant: "editor"},
	{name: "grant viewer", grant: "viewer"},
	{name: "change status", status: true},
	{name: "delete", remove: true},
}

// next is what the change makes of the membership cur (nil: removed) and
// the body that asks for it.
func (ch matrixChange) next(cur memberState) (*memberState, map[string]string) {
	switch {
	case ch.remove:
		return nil, nil
	case ch.status:
		next := memberState{role: cmp.Or(cur.role, "viewer")}
		switch cur.status {
		case "active":
			next.status = "inactive"
		case "":
			next.status = "pending"
		default:
			next.status = "active"
		}
		return &next, map[string]string{"role": next.role, "status": next.status}
	}
	// docs/design.md: PUT takes {"role"[, "status"]}; a membership without a
	// status is active (the data contract's default).
	return &memberState{ch.grant, "active"}, map[string]string{"role": ch.grant}
}

type matrixRow struct {
	user, company string
	m             memberState
}

// matrixCell is one request of the escalation matrix with the rows it runs
// against. Every ID is unique to the cell, so all cells share one database
// and may run in any order.
type matrixCell struct {
	n                            int
	actor                        matrixActor
	inherited, self, otherTenant bool
	target                       matrixTarget
	change                       matrixChange

	actorID, targetID, keeperID string
	// company is the company under test: the root of the tenant the
	// request goes to, or its child for the inherited cells.
	company string
	root    bool
	rows    []matrixRow
	before  memberState
	next    *memberState
	body    map[string]string
	// actorRole is the role the actor holds on company, active only,
	// directly or through an ancestor; otherOwners counts the company's
	// active owners besides the target. Both are facts of the setup.
	actorRole   string
	otherOwners int
	want        int
}

func (c *matrixCell) name() string {
	via, who, where := "direct", "other", "same company"
	if c.inherited {
		via = "inherited"
	}
	if c.self {
		who = "self"
	}
	if c.otherTenant {
		where = "other company"
	}
	return fmt.Sprintf("%04d actor=%s %s/target=%s/%s/%s/%s", c.n, c.actor.name, via, c.target.name, c.change.name, who, where)
}

func (c *matrixCell) method() string {
	if c.change.remove {
		return http.MethodDelete
	}
	return http.MethodPut
}

func (c *matrixCell) action() string {
	if c.change.remove {
		return "member.remove"
	}
	return "member.set"
}

// matrixCells enumerates actor x target's state x change x self/other x
// same/other company, leaving out the combinations that cannot exist: for
// self cells the target's state is the actor's own, and a direct active
// owner is itself a second owner, so nobody else is the last one.
func matrixCells() []*matrixCell {
	var cells []*matrixCell
	for _, a := range matrixActors {
		for _, inherited := range []bool{false, true} {
			for _, otherTenant := range []bool{false, true} {
				for _, self := range []bool{false, true} {
					for _, tg := range matrixTargets {
						for _, ch := range matrixChanges {
							c := &matrixCell{actor: a, inherited: inherited, otherTenant: otherTenant, self: self, target: tg, change: ch}
							if c.possible() {
								c.n = len(cells)
								c.setUp()
								c.want = expectedStatus(c)
								cells = append(cells, c)
							}
						}
					}
				}
			}
		}
	}
	return cells
}

// ownsCompanyUnderTest reports whether the actor's membership is on the
// company under test itself.
func (c *matrixCell) ownsCompanyUnderTest() bool { return !c.otherTenant && !c.inherited }

func (c *matrixCell) possible() bool {
	own := memberState{}
	if c.ownsCompanyUnderTest() {
		own = c.actor.m
	}
	if c.self {
		if c.target.last {
			return c.ownsCompanyUnderTest() && c.actor.m.activeOwner()
		}
		return c.target.m == own
	}
	return !(c.target.last && c.ownsCompanyUnderTest() && c.actor.m.activeOwner())
}

// setUp lays out the cell: the actor's tenant is root r and its child c;
// the other tenant is root x and its child xc. A keeper owns both roots (and
// the company under test when that is a child), except where the target is
// to be the last owner.
func (c *matrixCell) setUp() {
	n := c.n
	// IDs outside SpiceDB's alphabet on purpose: '@', '.' and ' ' must
	// survive the path and the store.
	c.actorID = fmt.Sprintf("actor.%d@example.com", n)
	c.keeperID = fmt.Sprintf("keeper-%d", n)
	c.targetID = fmt.Sprintf("target %d", n)
	if c.self {
		c.targetID = c.actorID
	}
	root, child := fmt.Sprintf("m%d-r", n), fmt.Sprintf("m%d-c", n)
	xroot, xchild := fmt.Sprintf("m%d-x", n), fmt.Sprintf("m%d-xc", n)
	c.company, c.root = root, true
	if c.otherTenant {
		c.company = xroot
	}
	if c.inherited {
		c.company, c.root = child, false
		if c.otherTenant {
			c.company = xchild
		}
	}
	for _, r := range []string{root, xroot} {
		if !(c.target.last && r == c.company) {
			c.rows = append(c.rows, matrixRow{c.keeperID, r, activeOwner})
		}
	}
	if !c.root && !c.target.last {
		c.rows = append(c.rows, matrixRow{c.keeperID, c.company, activeOwner})
	}
	if c.actor.m.exists() {
		c.rows = append(c.rows, matrixRow{c.actorID, root, c.actor.m})
	}
	c.before = c.target.m
	if !c.self && c.target.m.exists() {
		c.rows = append(c.rows, matrixRow{c.targetID, c.company, c.target.m})
	}
	c.next, c.body = c.change.next(c.before)
	if !c.otherTenant && c.actor.m.status == "active" {
		c.actorRole = c.actor.m.role
	}
	for _, r := range c.rows {
		if r.company == c.company && r.user != c.targetID && r.m.activeOwner() {
			c.otherOwners++
		}
	}
}

func (c *matrixCell) companies() [][2]string {
	n := c.n
	return [][2]string{
		{fmt.Sprintf("m%d-r", n), ""}, {fmt.Sprintf("m%d-c", n), fmt.Sprintf("m%d-r", n)},
		{fmt.Sprintf("m%d-x", n), ""}, {fmt.Sprintf("m%d-xc", n), fmt.Sprintf("m%d-x", n)},
	}
}

// expectedStatus is the oracle: docs/design.md's grant rules and HTTP contract,
// applied to the cell's facts, in the order the rules give.
func expectedStatus(c *matrixCell) int {
	if c.self {
		// Nobody changes their own membership; leaving needs no right.
		if c.next != nil {
			return http.StatusForbidden
		}
	} else {
		// Another user's non-owner membership needs manage_members;
		// granting, changing or revoking an owner needs manage_owners.
		need := "manage_members"
		if c.before.role == "owner" || (c.next != nil && c.next.role == "owner") {
			need = "manage_owners"
		}
		if !grants(c.actorRole, need) {
			return http.StatusForbidden
		}
	}
	// Deleting what does not exist is 404, once the caller had the right
	// to delete it.
	if c.next == nil && !c.before.exists() {
		return http.StatusNotFound
	}
	// A root company keeps at least one active owner.
	losesOwner := c.before.activeOwner() && (c.next == nil || !c.next.activeOwner())
	if c.root && losesOwner && c.otherOwners == 0 {
		return http.StatusConflict
	}
	if c.next == nil {
		return http.StatusNoContent
	}
	return http.StatusOK
}

// after is the target's membership once the request answered status.
func (c *matrixCell) after(status int) memberState {
	switch status {
	case http.StatusOK:
		return *c.next
	case http.StatusNoContent:
		return memberState{}
	}
	return c.before
}

var outcomeOf = map[int]string{
	http.StatusOK:        "allowed",
	http.StatusNoContent: "allowed",
	http.StatusForbidden: "forbidden",
	http.StatusNotFound:  "not_found",
	http.StatusConflict:  "conflict",
}

func matrixSeed(cells []*matrixCell) []string {
	var roots, children, members []string
	for _, c := range cells {
		for _, co := range c.companies() {
			if co[1] == "" {
				roots = append(roots, fmt.Sprintf("(%s, %s, NULL)", sqlText(co[0]), sqlText("Company "+co[0])))
			} else {
				children = append(children, fmt.Sprintf("(%s, %s, %s)", sqlText(co[0]), sqlText("Company "+co[0]), sqlText(co[1])))
			}
		}
		for _, r := range c.rows {
			members = append(members, fmt.Sprintf("(%s, %s, %s, %s)", sqlText(r.user), sqlText(r.company), sqlText(r.m.role), sqlText(r.m.status)))
		}
	}
	return []string{
		"INSERT INTO companies (id, name, parent_id) VALUES " + strings.Join(roots, ",\n"),
		"INSERT INTO companies (id, name, parent_id) VALUES " + strings.Join(children, ",\n"),
		"INSERT INTO company_memberships (user_id, company_id, role, status) VALUES " + strings.Join(members, ",\n"),
	}
}

type auditRow struct{ actor, action, company, target, outcome string }

func TestEscalationMatrix(t *testing.T) {
	cells := matrixCells()
	t.Logf("%d cells", len(cells))
	started := time.Now()
	s := startEmbeddedStack(t, matrixSeed(cells)...)
	t.Logf("stack with %d cells seeded in %v", len(cells), time.Since(started).Round(time.Millisecond))

	type result struct {
		status int
		body   []byte
		err    error
	}
	seeded := s.memberships(t)
	results := make([]result, len(cells))
	tokens := make([]string, len(cells))
	for i, c := range cells {
		tokens[i] = s.token(c.actorID)
	}
	// The cells share no rows, so a few workers may send them at once; the
	// answers are judged afterwards, on this goroutine.
	started = time.Now()
	const workers = 4
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				c := cells[i]
				var body []byte
				if c.body != nil {
					body, _ = json.Marshal(c.body)
				}
				a, err := s.send(c.method(), memberPath(c.company, c.targetID), tokens[i], body, nil)
				results[i] = result{a.status, a.body, err}
			}
		})
	}
	for i := range cells {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("%d requests in %v", len(cells), time.Since(started).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stored := s.memberships(t)
	audits := map[string][]auditRow{}
	rows, err := s.db.Query(ctx, `select actor, action, company_id, target, outcome from tenantgate.audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a auditRow
		if err := rows.Scan(&a.actor, &a.action, &a.company, &a.target, &a.outcome); err != nil {
			t.Fatal(err)
		}
		audits[a.actor] = append(audits[a.actor], a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// want is every membership as the answers say it must be now: the
	// seed, with each cell's target row as its answer left it.
	want := map[[2]string]memberState{}
	// changed holds the target rows of the requests that succeeded: any
	// other row must not even have been rewritten with the same values.
	changed := map[[2]string]bool{}
	tally := map[int]int{}
	for i, c := range cells {
		for _, r := range c.rows {
			want[[2]string{r.user, r.company}] = r.m
		}
		key := [2]string{c.targetID, c.company}
		delete(want, key)
		if m := c.after(results[i].status); m.exists() {
			want[key] = m
		}
		if results[i].status == http.StatusOK || results[i].status == http.StatusNoContent {
			changed[key] = true
		}
		tally[c.want]++
	}
	t.Logf("expected answers: %v", tally)

	for i, c := range cells {
		t.Run(c.name(), func(t *testing.T) {
			res := results[i]
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.status != c.want {
				t.Errorf("%s %s (body %v) by an actor holding %q: status %d, want %d; answer %s",
					c.method(), memberPath(c.company, c.targetID), c.body, c.actorRole, res.status, c.want, res.body)
			}
			key := [2]string{c.targetID, c.company}
			// On success the row is exactly what was asked; on a refusal it
			// is what it was.
			if got, wantRow := stored[key].memberState, c.after(c.want); got != wantRow {
				t.Errorf("membership of %q in %q is %v, want %v (was %v)", c.targetID, c.company, got, wantRow, c.before)
			}
			switch res.status {
			case http.StatusOK:
				// The answer is the membership as stored, with the token
				// of the write.
				var m struct {
					UserID           string `json:"user_id"`
					CompanyID        string `json:"company_id"`
					Role             string `json:"role"`
					Status           string `json:"status"`
					ConsistencyToken string `json:"consistency_token"`
				}
				if err := json.Unmarshal(res.body, &m); err != nil || m.UserID != c.targetID || m.CompanyID != c.company ||
					(memberState{m.Role, m.Status}) != *c.next || m.ConsistencyToken == "" {
					t.Errorf("answer %s, want %v of %q in %q with a consistency token", res.body, *c.next, c.targetID, c.company)
				}
			case http.StatusNoContent:
				if len(res.body) != 0 {
					t.Errorf("204 with a body: %s", res.body)
				}
			default:
				var doc map[string]any
				if err := json.Unmarshal(res.body, &doc); err != nil || doc["status"] != float64(res.status) {
					t.Errorf("refusal is no problem document: %s", res.body)
				}
			}
			// A refusal of a caller without a role on the company is not
			// the company's business: it is counted, not audited.
			wantAudit := []auditRow{{c.actorID, c.action(), c.company, c.targetID, outcomeOf[c.want]}}
			if c.actorRole == "" && outcomeOf[c.want] != "allowed" {
				wantAudit = nil
			}
			if got := audits[c.actorID]; !slices.Equal(got, wantAudit) {
				t.Errorf("audit rows %+v, want exactly %+v", got, wantAudit)
			}
		})
	}

	// No request may touch a row other than its target's, and a refused
	// one not even its target's.
	for key, m := range want {
		if stored[key].memberState != m {
			t.Errorf("membership %v is %v, want %v", key, stored[key].memberState, m)
		}
		if !changed[key] && stored[key] != seeded[key] {
			t.Errorf("membership %v was rewritten: %+v, seeded as %+v", key, stored[key], seeded[key])
		}
	}
	for key, m := range stored {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected membership %v: %v", key, m.memberState)
		}
	}
}

// storedMember is a membership row with what changes when it is rewritten.
type storedMember struct {
	memberState
	id, version string
}

// memberships reads every membership row.
func (s *stack) memberships(t *testing.T) map[[2]string]storedMember {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := s.db.Query(ctx, `select user_id, company_id, role, status, id, updated_at::text, xmin::text
		from company_memberships`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[[2]string]storedMember{}
	for rows.Next() {
		var user, company, updatedAt, xmin string
		var m storedMember
		if err := rows.Scan(&user, &company, &m.role, &m.status, &m.id, &updatedAt, &xmin); err != nil {
			t.Fatal(err)
		}
		// xmin is the transaction that wrote the row version: it
		// changes on any UPDATE, even one that keeps every value.
		m.version = updatedAt + " xmin=" + xmin
		stored[[2]string{user, company}] = m
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}

// bolaSeed is two tenants and a company where alice is only an editor.
const bolaSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('ta', 'Tenant A', NULL), ('tb', 'Tenant B', NULL), ('shared', 'Shared', NULL);
INSERT INTO companies (id, name, parent_id) VALUES
  ('ta-sub', 'Tenant A sub', 'ta'), ('tb-sub', 'Tenant B sub', 'tb');
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('alice', 'ta', 'owner', 'active'),
  ('bob', 'tb', 'owner', 'active'),
  ('carol', 'tb', 'admin', 'active'),
  ('dave', 'tb-sub', 'viewer', 'active'),
  ('erin', 'shared', 'owner', 'active'),
  ('alice', 'shared', 'editor', 'active');`

// manageRequest is a request of the management API about company id.
type manageRequest struct {
	name   string
	method string
	path   func(id string) string
	body   func(id string) string // "" for none
}

func (r manageRequest) send(t *testing.T, s *stack, bearer, id string) answer {
	t.Helper()
	var body []byte
	if r.body != nil {
		body = []byte(r.body(id))
	}
	return s.mustSend(t, r.method, r.path(id), bearer, body, nil)
}

func companyPath(id string) string { return "/v1/companies/" + url.PathEscape(id) }

func fixed(body string) func(string) string { return func(string) string { return body } }

// bolaRequests is every management endpoint, with the company ID taken from
// the request wherever one can be.
var bolaRequests = []manageRequest{
	{"list members", "GET", membersPath, nil},
	{"list effective members", "GET", func(id string) string { return membersPath(id) + "?effective=true" }, nil},
	{"audit", "GET", func(id string) string { return companyPath(id) + "/audit" }, nil},
	// bob owns tb: an answer that depends on it would tell.
	{"put an owner's membership", "PUT", func(id string) string { return memberPath(id, "bob") }, fixed(`{"role":"viewer"}`)},
	{"put an admin's membership", "PUT", func(id string) string { return memberPath(id, "carol") }, fixed(`{"role":"viewer"}`)},
	{"put a new member", "PUT", func(id string) string { return memberPath(id, "mallory") }, fixed(`{"role":"admin"}`)},
	{"put a new owner", "PUT", func(id string) string { return memberPath(id, "mallory") }, fixed(`{"role":"owner"}`)},
	{"put oneself", "PUT", func(id string) string { return memberPath(id, "alice") }, fixed(`{"role":"owner"}`)},
	{"put the wildcard", "PUT", func(id string) string { return memberPath(id, "*") }, fixed(`{"role":"viewer"}`)},
	{"delete an owner", "DELETE", func(id string) string { return memberPath(id, "bob") }, nil},
	{"delete an admin", "DELETE", func(id string) string { return memberPath(id, "carol") }, nil},
	{"delete a non-member", "DELETE", func(id string) string { return memberPath(id, "nobody") }, nil},
	{"delete the wildcard", "DELETE", func(id string) string { return memberPath(id, "*") }, nil},
	{"rename", "PATCH", companyPath, fixed(`{"name":"pwned"}`)},
	{"move under one's own company", "PATCH", companyPath, fixed(`{"parent_id":"ta"}`)},
	{"make a root", "PATCH", companyPath, fixed(`{"parent_id":null}`)},
	{"rename and move", "PATCH", companyPath, fixed(`{"name":"pwned","parent_id":"ta-sub"}`)},
	{"move one's own company under it", "PATCH", fixed(companyPath("ta-sub")),
		func(id string) string { return fmt.Sprintf(`{"parent_id":%q}`, id) }},
	{"create a child", "POST", fixed("/v1/companies"),
		func(id string) string { return fmt.Sprintf(`{"name":"planted","parent_id":%q}`, id) }},
	{"create a child with an id", "POST", fixed("/v1/companies"),
		func(id string) string { return fmt.Sprintf(`{"id":"planted","name":"planted","parent_id":%q}`, id) }},
}

// TestBOLA: a caller who holds nothing on a company gets one and the same
// refusal for it, for a company that does not exist and for "*", on every
// management endpoint; so the answer tells nothing about the company, its
// members or their roles, and nothing changes.
func TestBOLA(t *testing.T) {
	s := startEmbeddedStack(t, bolaSeed)
	alice := s.token("alice")
	before := s.dumpRows(t)
	ids := []string{"tb", "tb-sub", "no-such-company", "*"}
	for _, req := range bolaRequests {
		t.Run(req.name, func(t *testing.T) {
			var first map[string]any
			for _, id := range ids {
				doc := problemOf(t, req.send(t, s, alice, id), http.StatusForbidden)
				if first == nil {
					first = doc
					if detail, _ := doc["detail"].(string); strings.Contains(detail, id) {
						t.Errorf("detail %q names the company", detail)
					}
					continue
				}
				if !maps.Equal(doc, first) {
					t.Errorf("for %q: %v, for %q: %v", ids[0], first, id, doc)
				}
			}
		})
	}
	// "*" is never a user, and a caller who cannot manage the company is
	// told so, whatever the path says about the user.
	t.Run("wildcard user on a company alice only edits", func(t *testing.T) {
		problemOf(t, s.mustSend(t, "PUT", memberPath("shared", "*"), alice, []byte(`{"role":"viewer"}`), nil), http.StatusForbidden)
		problemOf(t, s.mustSend(t, "DELETE", memberPath("shared", "*"), alice, nil, nil), http.StatusForbidden)
	})
	if after := s.dumpRows(t); after != before {
		t.Errorf("rows changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestMassAssignment: IDs come from the path and the token only, and every
// field is checked, so a body naming anything else is a 400 that changes
// nothing; the service token answers checks, it manages nothing.
func TestMassAssignment(t *testing.T) {
	s := startEmbeddedStack(t, bolaSeed,
		`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('frank', 'ta', 'viewer')`)
	alice := s.token("alice")
	before := s.dumpRows(t)
	frank := fixed(memberPath("ta", "frank"))
	ta := fixed(companyPath("ta"))
	create := fixed("/v1/companies")
	for _, c := range []manageRequest{
		{"put with company_id", "PUT", frank, fixed(`{"role":"admin","company_id":"tb"}`)},
		{"put with company_id null", "PUT", frank, fixed(`{"role":"admin","company_id":null}`)},
		{"put with user_id", "PUT", frank, fixed(`{"role":"admin","user_id":"mallory"}`)},
		{"put with user_id null", "PUT", frank, fixed(`{"role":"admin","user_id":null}`)},
		{"put with id", "PUT", frank, fixed(`{"role":"admin","id":"m-1"}`)},
		{"put with an unknown field", "PUT", frank, fixed(`{"role":"admin","is_superuser":true}`)},
		{"put without role", "PUT", frank, fixed(`{"status":"active"}`)},
		{"put an unknown role", "PUT", frank, fixed(`{"role":"root"}`)},
		{"put status deleted", "PUT", frank, fixed(`{"role":"admin","status":"deleted"}`)},
		{"put status in capitals", "PUT", frank, fixed(`{"role":"admin","status":"Active"}`)},
		{"put status as a number", "PUT", frank, fixed(`{"role":"admin","status":1}`)},
		// alice manages ta, so this is not a refusal but bad input.
		{"put the wildcard user", "PUT", fixed(memberPath("ta", "*")), fixed(`{"role":"viewer"}`)},
		{"patch with id", "PATCH", ta, fixed(`{"id":"tb","name":"renamed"}`)},
		{"patch with id null", "PATCH", ta, fixed(`{"id":null,"name":"renamed"}`)},
		{"patch with an unknown field", "PATCH", ta, fixed(`{"name":"renamed","owner":"mallory"}`)},
		{"patch parent_id as a number", "PATCH", ta, fixed(`{"parent_id":5}`)},
		{"patch nothing", "PATCH", ta, fixed(`{}`)},
		{"post with an unknown field", "POST", create, fixed(`{"name":"new","owner_id":"mallory"}`)},
		{"post with members", "POST", create, fixed(`{"name":"new","members":[{"user_id":"mallory","role":"owner"}]}`)},
		{"post without name", "POST", create, fixed(`{"parent_id":"ta"}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			problemOf(t, c.send(t, s, alice, ""), http.StatusBadRequest)
		})
	}
	t.Run("service token", func(t *testing.T) {
		for _, c := range []manageRequest{
			{"create", "POST", create, fixed(`{"name":"new"}`)},
			{"patch", "PATCH", ta, fixed(`{"name":"renamed"}`)},
			{"list members", "GET", fixed(membersPath("ta")), nil},
			{"list effective members", "GET", fixed(membersPath("ta") + "?effective=true"), nil},
			{"put member", "PUT", frank, fixed(`{"role":"admin"}`)},
			{"delete member", "DELETE", frank, nil},
			{"audit", "GET", fixed(companyPath("ta") + "/audit"), nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				problemOf(t, c.send(t, s, serviceToken, ""), http.StatusForbidden)
			})
		}
	})
	if after := s.dumpRows(t); after != before {
		t.Errorf("rows changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// companyAnswer is the answer to POST and PATCH /v1/companies.
type companyAnswer struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	ParentID         *string `json:"parent_id"`
	ConsistencyToken string  `json:"consistency_token"`
}

type membersAnswer struct {
	Members []struct {
		UserID    string `json:"user_id"`
		CompanyID string `json:"company_id"`
		Role      string `json:"role"`
		Status    string `json:"status"`
	} `json:"members"`
}

type effectiveAnswer struct {
	Members []struct {
		UserID string `json:"user_id"`
		Role   string `json:"role"`
		Via    []struct {
			CompanyID string `json:"company_id"`
			Role      string `json:"role"`
			Inherited bool   `json:"inherited"`
		} `json:"via"`
	} `json:"members"`
}

// createCompany posts body as user and checks a 201 answer.
func (s *stack) createCompany(t *testing.T, user, body string) companyAnswer {
	t.Helper()
	a := s.mustSend(t, "POST", "/v1/companies", s.token(user), []byte(body), nil)
	if a.status != http.StatusCreated {
		t.Fatalf("create %s as %s: status %d, want 201; body %s", body, user, a.status, a.body)
	}
	var co companyAnswer
	decodeAnswer(t, a, &co)
	if loc, want := a.header.Get("Location"), companyPath(co.ID); co.ID == "" || loc != want {
		t.Errorf("Location %q for id %q, want %q", loc, co.ID, want)
	}
	if co.ConsistencyToken == "" || a.header.Get("Consistency-Token") != co.ConsistencyToken {
		t.Errorf("consistency token %q in the body, %q in the header", co.ConsistencyToken, a.header.Get("Consistency-Token"))
	}
	return co
}

// putMember sets user's membership as actor and returns the write's token.
func (s *stack) putMember(t *testing.T, actor, company, user, body string) string {
	t.Helper()
	a := s.mustSend(t, "PUT", memberPath(company, user), s.token(actor), []byte(body), nil)
	if a.status != http.StatusOK {
		t.Fatalf("put %s in %s as %s: status %d; body %s", user, company, actor, a.status, a.body)
	}
	var m struct {
		UserID, CompanyID, Role, Status string
		ConsistencyToken                string `json:"consistency_token"`
	}
	decodeAnswer(t, a, &m)
	if m.ConsistencyToken == "" {
		t.Errorf("put %s in %s: no consistency token in %s", user, company, a.body)
	}
	return m.ConsistencyToken
}

// parentOf reads a company's parent from Postgres ("" for a root).
func (s *stack) parentOf(t *testing.T, company string) (name, parent string) {
	t.Helper()
	err := s.db.QueryRow(context.Background(), `select name, coalesce(parent_id, '') from companies where id = $1`, company).
		Scan(&name, &parent)
	if err != nil {
		t.Fatalf("company %q: %v", company, err)
	}
	return name, parent
}

func TestManageCompanies(t *testing.T) {
	s := startEmbeddedStack(t)

	t.Run("create makes the caller owner", func(t *testing.T) {
		co := s.createCompany(t, "alice", `{"name":"Acme"}`)
		if co.Name != "Acme" || co.ParentID != nil {
			t.Errorf("created %+v, want Acme without parent", co)
		}
		var got membersAnswer
		a := s.mustSend(t, "GET", membersPath(co.ID), s.token("alice"), nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("members: status %d; body %s", a.status, a.body)
		}
		decodeAnswer(t, a, &got)
		if len(got.Members) != 1 || got.Members[0].UserID != "alice" || got.Members[0].CompanyID != co.ID ||
			got.Members[0].Role != "owner" || got.Members[0].Status != "active" {
			t.Errorf("members of the new company: %s, want alice as active owner", a.body)
		}
		// A chosen ID outside SpiceDB's alphabet, with a slash, comes back
		// escaped in Location.
		named := s.createCompany(t, "alice", `{"id":"acme eu/1","name":"Acme EU"}`)
		if named.ID != "acme eu/1" {
			t.Errorf("created id %q, want the one asked for", named.ID)
		}
		problemOf(t, s.mustSend(t, "POST", "/v1/companies", s.token("bob"), []byte(`{"id":"acme eu/1","name":"again"}`), nil), http.StatusConflict)
	})

	s.createCompany(t, "alice", `{"id":"hq","name":"HQ"}`)
	for user, body := range map[string]string{
		"adam": `{"role":"admin"}`, "eddie": `{"role":"editor"}`, "vera": `{"role":"viewer"}`,
		"ian": `{"role":"admin","status":"inactive"}`,
	} {
		s.putMember(t, "alice", "hq", user, body)
	}

	t.Run("a child needs create on the parent", func(t *testing.T) {
		for _, c := range []struct {
			name, user string
			want       int
		}{
			{"owner", "alice", http.StatusCreated},
			{"admin", "adam", http.StatusCreated},
			{"editor", "eddie", http.StatusForbidden},
			{"viewer", "vera", http.StatusForbidden},
			{"inactive admin", "ian", http.StatusForbidden},
			{"nobody", "nora", http.StatusForbidden},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := "hq-" + c.user
				body := fmt.Sprintf(`{"id":%q,"name":"Child","parent_id":"hq"}`, id)
				if c.want == http.StatusForbidden {
					problemOf(t, s.mustSend(t, "POST", "/v1/companies", s.token(c.user), []byte(body), nil), c.want)
					var n int
					if err := s.db.QueryRow(context.Background(), `select count(*) from companies where id = $1`, id).Scan(&n); err != nil || n != 0 {
						t.Errorf("refused company exists: %d rows, %v", n, err)
					}
					return
				}
				co := s.createCompany(t, c.user, body)
				if co.ParentID == nil || *co.ParentID != "hq" {
					t.Errorf("created %+v, want parent hq", co)
				}
				var got membersAnswer
				if code := s.do("GET", membersPath(id), s.token(c.user), nil, &got); code != http.StatusOK ||
					len(got.Members) != 1 || got.Members[0].UserID != c.user || got.Members[0].Role != "owner" {
					t.Errorf("members of %s: status %d, %+v; want %s as owner", id, code, got, c.user)
				}
			})
		}
		// create is inherited: adam is admin on hq, not on alice's child.
		s.createCompany(t, "adam", `{"id":"hq-alice-adam","name":"Grandchild","parent_id":"hq-alice"}`)
	})

	t.Run("rename needs update", func(t *testing.T) {
		for _, c := range []struct {
			user string
			want int
		}{{"alice", http.StatusOK}, {"eddie", http.StatusOK}, {"vera", http.StatusForbidden}, {"nora", http.StatusForbidden}} {
			t.Run(c.user, func(t *testing.T) {
				name := "HQ by " + c.user
				a := s.mustSend(t, "PATCH", companyPath("hq"), s.token(c.user), jsonBody(t, map[string]string{"name": name}), nil)
				if c.want != http.StatusOK {
					problemOf(t, a, c.want)
					if got, _ := s.parentOf(t, "hq"); got == name {
						t.Errorf("refused rename happened")
					}
					return
				}
				var co companyAnswer
				decodeAnswer(t, a, &co)
				if a.status != http.StatusOK || co.Name != name || co.ID != "hq" || co.ParentID != nil || co.ConsistencyToken == "" {
					t.Errorf("rename: status %d, body %s", a.status, a.body)
				}
				if got, _ := s.parentOf(t, "hq"); got != name {
					t.Errorf("name in Postgres %q, want %q", got, name)
				}
			})
		}
	})

	t.Run("move", func(t *testing.T) {
		s.createCompany(t, "alice", `{"id":"branch","name":"Branch"}`)
		// alice leaves a child of hq: allowed, a child needs no owner of
		// its own. It then cannot become a root without one.
		s.createCompany(t, "alice", `{"id":"orphan","name":"Orphan","parent_id":"hq"}`)
		if a := s.mustSend(t, "DELETE", memberPath("orphan", "alice"), s.token("alice"), nil, nil); a.status != http.StatusNoContent {
			t.Fatalf("leave orphan: status %d; body %s", a.status, a.body)
		}
		for _, c := range []struct {
			name, user, company, body string
			want                      int
			parent                    string // after the request
		}{
			{"under another root", "alice", "branch", `{"parent_id":"hq"}`, http.StatusOK, "hq"},
			{"under its own child", "alice", "hq", `{"parent_id":"branch"}`, http.StatusConflict, ""},
			{"under a grandchild", "alice", "hq", `{"parent_id":"hq-alice-adam"}`, http.StatusConflict, ""},
			{"under itself", "alice", "hq", `{"parent_id":"hq"}`, http.StatusConflict, ""},
			// Moving needs manage_owners on the company: adam is admin.
			{"by an admin", "adam", "branch", `{"parent_id":null}`, http.StatusForbidden, "hq"},
			// ... and create on the new parent: alice owns both trees,
			// adam owns hq-adam but holds nothing on acme eu/1.
			{"into another tree", "alice", "branch", `{"parent_id":"acme eu/1"}`, http.StatusOK, "acme eu/1"},
			{"without create on the new parent", "adam", "hq-adam", `{"parent_id":"acme eu/1"}`, http.StatusForbidden, "hq"},
			{"to the root", "alice", "branch", `{"parent_id":null}`, http.StatusOK, ""},
			{"to the root without an owner of its own", "alice", "orphan", `{"parent_id":null}`, http.StatusConflict, "hq"},
		} {
			t.Run(c.name, func(t *testing.T) {
				a := s.mustSend(t, "PATCH", companyPath(c.company), s.token(c.user), []byte(c.body), nil)
				if c.want == http.StatusOK {
					var co companyAnswer
					decodeAnswer(t, a, &co)
					gotParent := ""
					if co.ParentID != nil {
						gotParent = *co.ParentID
					}
					if a.status != http.StatusOK || co.ID != c.company || gotParent != c.parent {
						t.Errorf("move: status %d, body %s; want parent %q", a.status, a.body, c.parent)
					}
				} else {
					doc := problemOf(t, a, c.want)
					if detail, _ := doc["detail"].(string); c.want == http.StatusConflict && detail == "" {
						t.Errorf("conflict without a detail: %s", a.body)
					}
				}
				if _, parent := s.parentOf(t, c.company); parent != c.parent {
					t.Errorf("parent of %s in Postgres %q, want %q", c.company, parent, c.parent)
				}
			})
		}
	})

	t.Run("effective members", func(t *testing.T) {
		s.createCompany(t, "alice", `{"id":"group","name":"Group"}`)
		s.createCompany(t, "alice", `{"id":"group-sub","name":"Group sub","parent_id":"group"}`)
		token := s.putMember(t, "alice", "group", "gina", `{"role":"admin"}`)
		want := `{"members":[` +
			`{"user_id":"alice","role":"owner","via":[{"company_id":"group-sub","role":"owner","inherited":false},{"company_id":"group","role":"owner","inherited":true}]},` +
			`{"user_id":"gina","role":"admin","via":[{"company_id":"group","role":"admin","inherited":true}]}]}`
		// The read presents the grant's token: the gateway waits for the
		// sync to apply it, so the first answer must include gina.
		a := s.mustSend(t, "GET", membersPath("group-sub")+"?effective=true", s.token("alice"),
			nil, http.Header{"Consistency-Token": {token}})
		if a.status != http.StatusOK {
			t.Fatalf("effective members: status %d; body %s", a.status, a.body)
		}
		var got, wantDoc effectiveAnswer
		decodeAnswer(t, a, &got)
		if err := json.Unmarshal([]byte(want), &wantDoc); err != nil {
			t.Fatal(err)
		}
		if g, w := jsonBody(t, got), jsonBody(t, wantDoc); !bytes.Equal(g, w) {
			t.Errorf("effective members of group-sub:\n got %s\nwant %s", g, w)
		}
		// gina manages the child through the parent; vera does not.
		if code := s.do("GET", membersPath("group-sub")+"?effective=true", s.token("gina"), nil, nil); code != http.StatusOK {
			t.Errorf("gina lists effective members: status %d", code)
		}
		if code := s.do("GET", membersPath("group-sub")+"?effective=true", s.token("vera"), nil, nil); code != http.StatusForbidden {
			t.Errorf("vera lists effective members: status %d, want 403", code)
		}
	})
}

// TestManageConcurrentOwnerChanges: two owners of a root, each asking at the
// same moment to demote the other (or to leave), must end as one of the two
// serial orders: the first wins, the second is refused (the demoted owner
// lost manage_owners; the second leaver is the last owner), and the company
// keeps exactly one active owner. Without the row locks both could commit
// and leave the company without one.
func TestManageConcurrentOwnerChanges(t *testing.T) {
	const pairs = 25
	var seed strings.Builder
	for i := range pairs {
		fmt.Fprintf(&seed, `INSERT INTO companies (id, name) VALUES ('duel-%d', 'Duel'), ('leave-%d', 'Leave');
			INSERT INTO company_memberships (user_id, company_id, role) VALUES
			('a%d', 'duel-%d', 'owner'), ('b%d', 'duel-%d', 'owner'), ('a%d', 'leave-%d', 'owner'), ('b%d', 'leave-%d', 'owner');`,
			i, i, i, i, i, i, i, i, i, i)
	}
	s := startEmbeddedStack(t, seed.String())
	for _, c := range []struct {
		name, prefix, method string
		body                 []byte
		// target is whom user's request is about.
		target func(user, other string) string
		want   []int // the two answers, in either order
	}{
		{"demote each other", "duel", "PUT", []byte(`{"role":"admin"}`), func(_, other string) string { return other },
			[]int{http.StatusOK, http.StatusForbidden}},
		{"both leave", "leave", "DELETE", nil, func(user, _ string) string { return user },
			[]int{http.StatusNoContent, http.StatusConflict}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range pairs {
				company := fmt.Sprintf("%s-%d", c.prefix, i)
				users := [2]string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)}
				tokens := [2]string{s.token(users[0]), s.token(users[1])}
				var got [2]answer
				var errs [2]error
				// Both requests are released together, so they overlap in the
				// store as often as the scheduler lets them.
				start := make(chan struct{})
				var wg sync.WaitGroup
				for k := range 2 {
					wg.Go(func() {
						<-start
						got[k], errs[k] = s.send(c.method, memberPath(company, c.target(users[k], users[1-k])), tokens[k], c.body, nil)
					})
				}
				close(start)
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				codes := []int{got[0].status, got[1].status}
				slices.Sort(codes)
				if !slices.Equal(codes, c.want) {
					t.Errorf("%s: answers %d (%s) and %d (%s), want %v in some order",
						company, got[0].status, got[0].body, got[1].status, got[1].body, c.want)
				}
				var owners int
				err := s.db.QueryRow(context.Background(), `select count(*) from company_memberships
					where company_id = $1 and role = 'owner' and status = 'active'`, company).Scan(&owners)
				if err != nil || owners != 1 {
					t.Errorf("%s has %d active owners (%v), want 1", company, owners, err)
				}
			}
		})
	}
}
