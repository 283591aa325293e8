package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The move half of the escalation matrix. Moving a company is a privilege
// change against the owners above it: they lose every inherited right on it
// and its subtree. The written rule: a move needs manage_owners on the
// company's current parent when it has one (on the company itself when it
// is a root), and create on the new parent when it gets one.
//
// Every cell has a tree of its own:
//
//	h (keeper owns)          o (keeper owns)
//	├── s (sowner owns)
//	│   └── k
//	└── t
//
// and the actor holds one role at one level, plus, in some cells, owner of
// the destination, so that the destination's rule and the current parent's
// rule are each tested alone.

// moveKind is what a cell asks for: which company moves where.
type moveKind struct {
	name          string
	company, from string
	to            string // "" makes the company a root
}

var moveKinds = []moveKind{
	{"detach", "s", "h", ""},
	{"move away", "s", "h", "o"},
	{"move in", "o", "", "t"},
	{"move within", "k", "s", "t"},
}

// moveTree is the parent of each company of a cell's tree.
var moveTree = map[string]string{"h": "", "s": "h", "k": "s", "t": "h", "o": ""}

var moveLevels = []string{"h", "s", "k", "t", "o"}

type moveCell struct {
	n                int
	kind             moveKind
	role, level      string
	ownsDestination  bool
	actor            string
	want             int
	wantParentsAfter map[string]string
}

func (c *moveCell) id(node string) string {
	if node == "" {
		return ""
	}
	return fmt.Sprintf("mv%d-%s", c.n, node)
}

func (c *moveCell) name() string {
	dest := ""
	if c.ownsDestination {
		dest = ", owner of the destination"
	}
	return fmt.Sprintf("%03d %s by %s at %s%s", c.n, c.kind.name, c.role, c.level, dest)
}

// roleOn is the actor's strongest role on node before the move: held there
// or on an ancestor.
func (c *moveCell) roleOn(node string) string {
	best := ""
	for at := node; at != ""; at = moveTree[at] {
		if at == c.level && c.role != "none" && strongerRole(c.role, best) {
			best = c.role
		}
		if c.ownsDestination && at == c.kind.to {
			best = "owner"
		}
	}
	return best
}

func strongerRole(a, b string) bool {
	order := map[string]int{"owner": 0, "admin": 1, "editor": 2, "viewer": 3, "": 4}
	return order[a] < order[b]
}

// expectedMoveStatus is the oracle, from the written rules.
func (c *moveCell) expectedStatus() int {
	k := c.kind
	switch {
	case !grants(c.roleOn(k.company), "read"):
		return http.StatusForbidden
	case k.from != "" && !grants(c.roleOn(k.from), "manage_owners"):
		return http.StatusForbidden
	case k.from == "" && !grants(c.roleOn(k.company), "manage_owners"):
		return http.StatusForbidden
	case k.to != "" && !grants(c.roleOn(k.to), "create"):
		return http.StatusForbidden
	}
	return http.StatusOK
}

func moveCells() []*moveCell {
	var cells []*moveCell
	for _, k := range moveKinds {
		for _, role := range []string{"owner", "admin", "editor", "viewer", "none"} {
			for _, level := range moveLevels {
				for _, owns := range []bool{false, true} {
					if owns && (k.to == "" || level == k.to) {
						continue
					}
					if role == "none" && level != "h" {
						continue // one cell is enough for holding nothing
					}
					c := &moveCell{n: len(cells), kind: k, role: role, level: level, ownsDestination: owns}
					c.actor = fmt.Sprintf("mover.%d@example.com", c.n)
					c.want = c.expectedStatus()
					c.wantParentsAfter = map[string]string{}
					for node, parent := range moveTree {
						c.wantParentsAfter[c.id(node)] = c.id(parent)
					}
					if c.want == http.StatusOK {
						c.wantParentsAfter[c.id(k.company)] = c.id(k.to)
					}
					cells = append(cells, c)
				}
			}
		}
	}
	return cells
}

func moveSeed(cells []*moveCell) []string {
	var companies, members []string
	for _, c := range cells {
		// Parents first: the order of moveLevels puts them first.
		for _, node := range moveLevels {
			parent := "NULL"
			if p := moveTree[node]; p != "" {
				parent = sqlText(c.id(p))
			}
			companies = append(companies, fmt.Sprintf("(%s, %s, %s)", sqlText(c.id(node)), sqlText("Company "+c.id(node)), parent))
		}
		members = append(members,
			fmt.Sprintf("('keeper-%d', %s, 'owner')", c.n, sqlText(c.id("h"))),
			fmt.Sprintf("('keeper-%d', %s, 'owner')", c.n, sqlText(c.id("o"))),
			fmt.Sprintf("('sowner-%d', %s, 'owner')", c.n, sqlText(c.id("s"))))
		if c.role != "none" {
			members = append(members, fmt.Sprintf("(%s, %s, %s)", sqlText(c.actor), sqlText(c.id(c.level)), sqlText(c.role)))
		}
		if c.ownsDestination {
			members = append(members, fmt.Sprintf("(%s, %s, 'owner')", sqlText(c.actor), sqlText(c.id(c.kind.to))))
		}
	}
	return []string{
		"INSERT INTO companies (id, name, parent_id) VALUES " + strings.Join(companies, ",\n"),
		"INSERT INTO company_memberships (user_id, company_id, role) VALUES " + strings.Join(members, ",\n"),
	}
}

func TestMoveEscalationMatrix(t *testing.T) {
	cells := moveCells()
	s := startEmbeddedStack(t, moveSeed(cells)...)
	statuses := make([]int, len(cells))
	bodies := make([]string, len(cells))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				c := cells[i]
				parent := "null"
				if c.kind.to != "" {
					parent = fmt.Sprintf("%q", c.id(c.kind.to))
				}
				a, err := s.send("PATCH", companyPath(c.id(c.kind.company)), s.token(c.actor), []byte(`{"parent_id":`+parent+`}`), nil)
				if err != nil {
					bodies[i] = err.Error()
					continue
				}
				statuses[i], bodies[i] = a.status, string(a.body)
			}
		})
	}
	for i := range cells {
		next <- i
	}
	close(next)
	wg.Wait()

	parents := s.parents(t)
	tally := map[int]int{}
	for i, c := range cells {
		tally[c.want]++
		t.Run(c.name(), func(t *testing.T) {
			if statuses[i] != c.want {
				t.Errorf("PATCH %s to %q: status %d, want %d: %s", c.id(c.kind.company), c.id(c.kind.to), statuses[i], c.want, bodies[i])
			}
			// A refusal leaves the tree as it was; a move changes exactly
			// the one parent.
			for id, want := range c.wantParentsAfter {
				if got := parents[id]; got != want {
					t.Errorf("parent of %s is %q, want %q", id, got, want)
				}
			}
		})
	}
	t.Logf("%d cells, expected answers %v", len(cells), tally)
	if tally[http.StatusOK] == 0 || tally[http.StatusForbidden] == 0 {
		t.Fatalf("the matrix exercises only one outcome: %v", tally)
	}
}

// parents reads every company's parent ("" for a root).
func (s *stack) parents(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.db.Query(ctx, `select id, coalesce(parent_id, '') from companies`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	parents := map[string]string{}
	for rows.Next() {
		var id, parent string
		if err := rows.Scan(&id, &parent); err != nil {
			t.Fatal(err)
		}
		parents[id] = parent
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return parents
}
