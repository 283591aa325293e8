package app_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
)

// Sizes of the differential test's data set.
const (
	diffCompanies   = 160
	diffUsers       = 30
	diffMemberships = 1200
	diffUpdates     = 300
	diffMaxDepth    = 12
)

// model is the test's own copy of the rows, and the oracle: permissions are
// computed straight from it, without SpiceDB.
type model struct {
	parent  map[string]string // company -> parent ("" for roots)
	members map[[2]string]authz.Membership
	// keys lists members' keys in a deterministic order for random picks;
	// pos is each key's index in it.
	keys [][2]string
	pos  map[[2]string]int
	// created counts companies made by updates, for fresh IDs.
	created int
}

func newModel() *model {
	return &model{parent: map[string]string{}, members: map[[2]string]authz.Membership{}, pos: map[[2]string]int{}}
}

func (m *model) setMember(mem authz.Membership) {
	key := [2]string{mem.UserID, mem.CompanyID}
	if _, ok := m.members[key]; !ok {
		m.pos[key] = len(m.keys)
		m.keys = append(m.keys, key)
	}
	m.members[key] = mem
}

func (m *model) deleteMember(key [2]string) {
	i, ok := m.pos[key]
	if !ok {
		return
	}
	last := m.keys[len(m.keys)-1]
	m.keys[i], m.pos[last] = last, i
	m.keys = m.keys[:len(m.keys)-1]
	delete(m.pos, key)
	delete(m.members, key)
}

func (m *model) ancestorsAndSelf(company string) []string {
	var chain []string
	for c := company; c != ""; c = m.parent[c] {
		chain = append(chain, c)
	}
	return chain
}

func (m *model) allowed(user string, p authz.Permission, company string) bool {
	if _, ok := m.parent[company]; !ok {
		return false
	}
	for _, c := range m.ancestorsAndSelf(company) {
		mem, ok := m.members[[2]string{user, c}]
		if ok && mem.Status == authz.StatusActive && mem.Role.Grants(p) {
			return true
		}
	}
	return false
}

func (m *model) companies() []string {
	ids := make([]string, 0, len(m.parent))
	for id := range m.parent {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *model) depth(company string) int { return len(m.ancestorsAndSelf(company)) }

// height is the number of levels of company's subtree, itself included.
func (m *model) height(company string) int {
	children := map[string][]string{}
	for c, p := range m.parent {
		children[p] = append(children[p], c)
	}
	var walk func(string) int
	walk = func(c string) int {
		h := 1
		for _, child := range children[c] {
			h = max(h, 1+walk(child))
		}
		return h
	}
	return walk(company)
}

func (m *model) hasChildren(company string) bool {
	for _, p := range m.parent {
		if p == company {
			return true
		}
	}
	return false
}

func sqlText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlParent(p string) string {
	if p == "" {
		return "NULL"
	}
	return sqlText(p)
}

func diffSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TENANTGATE_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TENANTGATE_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with TENANTGATE_TEST_SEED=%d)", seed, seed)
	return seed
}

var (
	diffRoles    = authz.Roles
	diffStatuses = []authz.Status{authz.StatusActive, authz.StatusActive, authz.StatusActive, authz.StatusInactive, authz.StatusPending}
)

func userName(i int) string { return fmt.Sprintf("user%02d@example.com", i) }

// randomData builds a forest and memberships, and the SQL that writes them.
func randomData(rng *rand.Rand) (*model, string) {
	m := newModel()
	var sql strings.Builder
	var ids []string
	for i := range diffCompanies {
		id := fmt.Sprintf("co-%03d", i)
		if i%7 == 3 {
			id = fmt.Sprintf("Co %03d.ü", i) // outside SpiceDB's alphabet
		}
		parent := ""
		if len(ids) > 0 && rng.IntN(10) > 0 {
			if p := ids[rng.IntN(len(ids))]; m.depth(p) < diffMaxDepth {
				parent = p
			}
		}
		m.parent[id] = parent
		ids = append(ids, id)
		fmt.Fprintf(&sql, "INSERT INTO companies (id, name, parent_id) VALUES (%s, %s, %s);\n", sqlText(id), sqlText("Company "+id), sqlParent(parent))
	}
	for len(m.members) < diffMemberships {
		mem := authz.Membership{
			UserID:    userName(rng.IntN(diffUsers)),
			CompanyID: ids[rng.IntN(len(ids))],
			Role:      diffRoles[rng.IntN(len(diffRoles))],
			Status:    diffStatuses[rng.IntN(len(diffStatuses))],
		}
		if _, dup := m.members[[2]string{mem.UserID, mem.CompanyID}]; dup {
			continue
		}
		m.setMember(mem)
		fmt.Fprintf(&sql, "INSERT INTO company_memberships (user_id, company_id, role, status) VALUES (%s, %s, '%s', '%s');\n",
			sqlText(mem.UserID), sqlText(mem.CompanyID), mem.Role, mem.Status)
	}
	return m, sql.String()
}

// randomUpdate applies one random change to m and returns its SQL.
func randomUpdate(rng *rand.Rand, m *model) string {
	ids := m.companies()
	r := rng.IntN(100)
	if len(m.keys) < diffMemberships/2 {
		r = 70 // keep the population from draining over a long workload
	}
	if len(m.keys) == 0 || len(ids) == 0 {
		return m.createCompany(rng, ids)
	}
	key := m.keys[rng.IntN(len(m.keys))]
	mem := m.members[key]
	where := fmt.Sprintf("user_id = %s AND company_id = %s", sqlText(key[0]), sqlText(key[1]))
	switch {
	case r < 28:
		mem.Role = diffRoles[rng.IntN(len(diffRoles))]
		m.setMember(mem)
		return fmt.Sprintf("UPDATE company_memberships SET role = '%s' WHERE %s", mem.Role, where)
	case r < 46:
		mem.Status = diffStatuses[rng.IntN(len(diffStatuses))]
		m.setMember(mem)
		return fmt.Sprintf("UPDATE company_memberships SET status = '%s' WHERE %s", mem.Status, where)
	case r < 58:
		m.deleteMember(key)
		return "DELETE FROM company_memberships WHERE " + where
	case r < 66:
		newKey := [2]string{userName(rng.IntN(diffUsers)), key[1]}
		if _, taken := m.members[newKey]; taken {
			return "SELECT 1"
		}
		m.deleteMember(key)
		mem.UserID = newKey[0]
		m.setMember(mem)
		return fmt.Sprintf("UPDATE company_memberships SET user_id = %s WHERE %s", sqlText(newKey[0]), where)
	case r < 82:
		mem = authz.Membership{UserID: userName(rng.IntN(diffUsers)), CompanyID: ids[rng.IntN(len(ids))],
			Role: diffRoles[rng.IntN(len(diffRoles))], Status: authz.StatusActive}
		newKey := [2]string{mem.UserID, mem.CompanyID}
		if _, taken := m.members[newKey]; taken {
			return "SELECT 1"
		}
		m.setMember(mem)
		return fmt.Sprintf("INSERT INTO company_memberships (user_id, company_id, role) VALUES (%s, %s, '%s')", sqlText(mem.UserID), sqlText(mem.CompanyID), mem.Role)
	case r < 92:
		child := ids[rng.IntN(len(ids))]
		parent := ""
		if rng.IntN(5) > 0 {
			parent = ids[rng.IntN(len(ids))]
			if slices.Contains(m.ancestorsAndSelf(parent), child) || m.depth(parent)+m.height(child) > diffMaxDepth {
				return "SELECT 1"
			}
		}
		m.parent[child] = parent
		return fmt.Sprintf("UPDATE companies SET parent_id = %s WHERE id = %s", sqlParent(parent), sqlText(child))
	case r < 96:
		victim := ids[rng.IntN(len(ids))]
		if m.hasChildren(victim) {
			return "SELECT 1"
		}
		delete(m.parent, victim)
		for _, k := range slices.Clone(m.keys) {
			if k[1] == victim {
				m.deleteMember(k)
			}
		}
		return "DELETE FROM companies WHERE id = " + sqlText(victim)
	default:
		return m.createCompany(rng, ids)
	}
}

// createCompany adds a company under a random parent (or as a root).
func (m *model) createCompany(rng *rand.Rand, ids []string) string {
	m.created++
	id := fmt.Sprintf("new-%d", m.created)
	parent := ""
	if len(ids) > 0 && rng.IntN(4) > 0 {
		if p := ids[rng.IntN(len(ids))]; m.depth(p) < diffMaxDepth {
			parent = p
		}
	}
	m.parent[id] = parent
	return fmt.Sprintf("INSERT INTO companies (id, name, parent_id) VALUES (%s, %s, %s)", sqlText(id), sqlText("Company "+id), sqlParent(parent))
}

// waitForMarker commits one more row and waits until the gateway sees it:
// the stream applies transactions in commit order, so everything committed
// before it is applied too.
func (s *stack) waitForMarker(t *testing.T, company string, n int) {
	t.Helper()
	user := fmt.Sprintf("marker-%d", n)
	s.exec(fmt.Sprintf("INSERT INTO company_memberships (user_id, company_id, role) VALUES ('%s', %s, 'viewer')", user, sqlText(company)))
	s.expect(t, expectation{user, "read", company, true})
	s.exec(fmt.Sprintf("DELETE FROM company_memberships WHERE user_id = '%s'", user))
	s.expect(t, expectation{user, "read", company, false})
}

type bulkAnswer struct {
	Results []struct {
		Permission string `json:"permission"`
		Company    string `json:"company"`
		Allowed    bool   `json:"allowed"`
	} `json:"results"`
}

// checkWorkers send single checks in parallel: the remote backend spends
// most of a check waiting on other processes.
const checkWorkers = 4

// checkAll asks /v1/check for every item, as the service on behalf of user,
// and reports each answer that differs from want.
func (s *stack) checkAll(user string, items []map[string]string, want []bool, report func(string, ...any)) int {
	s.t.Helper()
	var mu sync.Mutex
	var failure error
	next := make(chan int)
	var wg sync.WaitGroup
	for range checkWorkers {
		wg.Go(func() {
			for i := range next {
				var ans checkAnswer
				body := map[string]string{"subject": user, "permission": items[i]["permission"], "company": items[i]["company"]}
				code, err := s.call("POST", "/v1/check", serviceToken, body, &ans)
				mu.Lock()
				switch {
				case err != nil:
					failure = err
				case code != http.StatusOK:
					failure = fmt.Errorf("check: status %d", code)
				case ans.Allowed != want[i]:
					report("check: %s %s on %s = %v, oracle says %v", user, items[i]["permission"], items[i]["company"], ans.Allowed, want[i])
				}
				mu.Unlock()
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	if failure != nil {
		s.t.Fatal(failure)
	}
	return len(items)
}

// compare asserts that the gateway agrees with the model on every user x
// company x permission, through single checks, bulk checks and listings.
func (s *stack) compare(t *testing.T, m *model) {
	t.Helper()
	companies := m.companies()
	mismatches := 0
	report := func(format string, args ...any) {
		if mismatches++; mismatches <= 20 {
			t.Errorf(format, args...)
		}
	}
	checks := 0
	for u := range diffUsers {
		user := userName(u)
		var items []map[string]string
		var want []bool
		for _, c := range companies {
			for _, p := range authz.Permissions {
				items = append(items, map[string]string{"permission": string(p), "company": c})
				want = append(want, m.allowed(user, p, c))
			}
		}
		v1 := make([]bool, 0, len(items))
		for start := 0; start < len(items); start += 1000 {
			end := min(start+1000, len(items))
			var ans bulkAnswer
			body := map[string]any{"subject": user, "checks": items[start:end]}
			if code := s.do("POST", "/v1/check/bulk", serviceToken, body, &ans); code != http.StatusOK {
				t.Fatalf("bulk check: status %d", code)
			}
			for i, r := range ans.Results {
				if r.Allowed != want[start+i] {
					report("bulk: %s %s on %s = %v, oracle says %v", user, r.Permission, r.Company, r.Allowed, want[start+i])
				}
				v1 = append(v1, r.Allowed)
			}
		}
		checks += s.checkAll(user, items, want, report)
		s.compareAuthZEN(t, user, items, v1, report)
		s.compareExplanations(t, m, u, companies, report)
		for _, p := range authz.Permissions {
			var expected []string
			for _, c := range companies {
				if m.allowed(user, p, c) {
					expected = append(expected, c)
				}
			}
			got := s.companies(user, string(p), 100)
			slices.Sort(got)
			if !slices.Equal(got, expected) {
				report("list: %s %s = %v, oracle says %v", user, p, got, expected)
			}
		}
	}
	t.Logf("compared %d checks, bulk checks and %d listings; %d mismatches", checks, diffUsers*len(authz.Permissions), mismatches)
}

// compareAuthZEN asks AuthZEN's evaluations route every question of items
// about user, boxcarred with the subject as the default, and reports each
// decision that differs from /v1's answer to the same question (v1).
func (s *stack) compareAuthZEN(t *testing.T, user string, items []map[string]string, v1 []bool, report func(string, ...any)) {
	t.Helper()
	for start := 0; start < len(items); start += 1000 {
		end := min(start+1000, len(items))
		evaluations := make([]map[string]any, 0, end-start)
		for _, it := range items[start:end] {
			evaluations = append(evaluations, map[string]any{
				"action":   map[string]string{"name": it["permission"]},
				"resource": map[string]string{"type": "company", "id": it["company"]},
			})
		}
		body := map[string]any{"subject": map[string]string{"type": "user", "id": user}, "evaluations": evaluations}
		var ans struct {
			Evaluations []struct {
				Decision bool `json:"decision"`
			} `json:"evaluations"`
		}
		if code := s.do("POST", "/access/v1/evaluations", serviceToken, body, &ans); code != http.StatusOK || len(ans.Evaluations) != end-start {
			t.Fatalf("authzen evaluations: status %d, %d of %d decisions", code, len(ans.Evaluations), end-start)
		}
		for i, d := range ans.Evaluations {
			if it := items[start+i]; d.Decision != v1[start+i] {
				report("authzen: %s %s on %s = %v, /v1/check/bulk says %v", user, it["permission"], it["company"], d.Decision, v1[start+i])
			}
		}
	}
}

// explainedPermissions is GET /v1/companies/{id}/permissions?explain=true.
type explainedPermissions struct {
	Permissions  map[authz.Permission]bool `json:"permissions"`
	Explanations map[authz.Permission]struct {
		Allowed     bool `json:"allowed"`
		Memberships []struct {
			Company string     `json:"company"`
			Role    authz.Role `json:"role"`
			Grants  bool       `json:"grants"`
		} `json:"memberships"`
	} `json:"explanations"`
}

// compareExplanations asks user u, with its own token, to explain its
// permissions on a spread of companies (every 20th, offset by u, to keep
// the remote backend's reads bounded), and reports each explanation that
// does not give the oracle's answer or does not list exactly the active
// memberships of the user on the company and its ancestors.
func (s *stack) compareExplanations(t *testing.T, m *model, u int, companies []string, report func(string, ...any)) {
	t.Helper()
	user := userName(u)
	token := s.token(user)
	for i := u % 20; i < len(companies); i += 20 {
		c := companies[i]
		var ans explainedPermissions
		if code := s.do("GET", "/v1/companies/"+url.PathEscape(c)+"/permissions?explain=true", token, nil, &ans); code != http.StatusOK {
			t.Fatalf("explained permissions of %s on %s: status %d", user, c, code)
		}
		var held []string
		for _, anc := range m.ancestorsAndSelf(c) {
			if mem, ok := m.members[[2]string{user, anc}]; ok && mem.Status == authz.StatusActive {
				held = append(held, anc+"/"+string(mem.Role))
			}
		}
		slices.Sort(held)
		for _, p := range authz.Permissions {
			ex, want := ans.Explanations[p], m.allowed(user, p, c)
			if ex.Allowed != want || ans.Permissions[p] != want {
				report("explain: %s %s on %s explained as %v, answered %v, oracle says %v", user, p, c, ex.Allowed, ans.Permissions[p], want)
			}
			var listed []string
			for _, h := range ex.Memberships {
				listed = append(listed, h.Company+"/"+string(h.Role))
				if h.Grants != h.Role.Grants(p) {
					report("explain: %s %s on %s: %s on %s marked grants=%v", user, p, c, h.Role, h.Company, h.Grants)
				}
			}
			slices.Sort(listed)
			if !slices.Equal(listed, held) {
				report("explain: %s %s on %s lists %v, the rows hold %v", user, p, c, listed, held)
			}
		}
	}
}

func TestDifferentialAgainstRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := differential(t, startStack)
		// The index answered them (and verified each against SpiceDB,
		// checkIndexAgreed), not SpiceDB behind its back.
		for _, base := range s.baseURLs {
			if n, err := metric(base, `tenantgate_index_reads_total{answered_by="index",reason="fresh"}`); err != nil || n == 0 {
				t.Errorf("%s: the index answered %v reads (%v); the comparison did not exercise it", base, n, err)
			}
		}
	})
	// The escape hatch, --index=false, answers the same from SpiceDB alone.
	t.Run("embedded without index", func(t *testing.T) {
		differential(t, func(t *testing.T, seed ...string) *stack {
			return startEmbeddedStackWith(t, func(c *app.Config) { c.Index = false }, seed...)
		})
	})
}

// differential compares a stack's answers with the oracle on random data,
// then again after random updates.
func differential(t *testing.T, startStack startFunc) *stack {
	rng := rand.New(rand.NewPCG(diffSeed(t), 1))
	m, seed := randomData(rng)
	s := startStack(t, seed)
	anchor := m.companies()[0]
	started := time.Now()
	s.compare(t, m)
	t.Logf("first comparison took %v", time.Since(started))
	if t.Failed() {
		return s
	}
	for i := range diffUpdates {
		sql := randomUpdate(rng, m)
		if i%10 == 0 {
			sql = "BEGIN; " + sql + "; " + randomUpdate(rng, m) + "; COMMIT"
		}
		s.exec(sql)
	}
	if _, ok := m.parent[anchor]; !ok {
		anchor = m.companies()[0]
	}
	s.waitForMarker(t, anchor, 1)
	s.compare(t, m)
	return s
}
