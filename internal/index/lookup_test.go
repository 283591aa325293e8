package index

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// scrambled is the ID of company number i, spread by a multiplicative hash
// (a bijection on uint32) so that ID order is unrelated to tree order, as
// with the UUIDs applications use.
func scrambled(i int) string { return fmt.Sprintf("c%08x", uint32(i)*2654435761) }

// wideTree is a root, scrambled(0), with fanouts[0] children, each with
// fanouts[1] children, and so on, with viewer a viewer on the root; it
// returns the relationships and every company's ID.
func wideTree(viewer string, fanouts ...int) ([]authz.Relationship, []string) {
	rels := []authz.Relationship{{Resource: scrambled(0), Relation: string(authz.RoleViewer), SubjectType: authz.TypeUser, SubjectID: viewer}}
	ids := []string{scrambled(0)}
	level := []int{0}
	for _, fan := range fanouts {
		var next []int
		for _, p := range level {
			for range fan {
				c := len(ids)
				ids = append(ids, scrambled(c))
				rels = append(rels, authz.Relationship{Resource: scrambled(c), Relation: authz.RelationParent, SubjectType: authz.TypeCompany, SubjectID: scrambled(p)})
				next = append(next, c)
			}
		}
		level = next
	}
	return rels, ids
}

func buildGraph(tb testing.TB, rels []authz.Relationship) *Graph {
	tb.Helper()
	g, err := Build(slices.Values(rels))
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func TestLookupPages(t *testing.T) {
	rels, ids := wideTree("u", 4, 5) // 25 companies
	// Grants on a subtree and on a leaf under the root already granted: each
	// company reached twice must still be listed once.
	rels = append(rels,
		authz.Relationship{Resource: ids[1], Relation: string(authz.RoleEditor), SubjectType: authz.TypeUser, SubjectID: "u"},
		authz.Relationship{Resource: ids[24], Relation: string(authz.RoleOwner), SubjectType: authz.TypeUser, SubjectID: "u"},
	)
	g := buildGraph(t, rels)
	sorted := slices.Sorted(slices.Values(ids))
	tests := []struct {
		name     string
		cursor   string
		limit    int
		want     []string
		wantNext string
	}{
		{"first page", "", 10, sorted[:10], sorted[9]},
		{"middle page", sorted[9], 10, sorted[10:20], sorted[19]},
		{"last, short page", sorted[19], 10, sorted[20:], ""},
		{"a page that ends exactly at the last", sorted[14], 10, sorted[15:], ""},
		{"one page holds all", "", 25, sorted, ""},
		{"a limit beyond every company", "", math.MaxInt, sorted, ""},
		{"limit 1", "", 1, sorted[:1], sorted[0]},
		{"limit 1 before the last", sorted[23], 1, sorted[24:], ""},
		{"cursor at the end", sorted[24], 10, nil, ""},
		{"cursor past every ID", "zzz", 10, nil, ""},
		{"cursor between IDs", sorted[3] + "0", 2, sorted[4:6], sorted[5]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := g.Lookup("u", authz.PermRead, tt.cursor, tt.limit)
			if err != nil || !slices.Equal(got, tt.want) || next != tt.wantNext {
				t.Errorf("Lookup(%q, %d) = %v next %q (%v), want %v next %q", tt.cursor, tt.limit, got, next, err, tt.want, tt.wantNext)
			}
		})
	}
}

// TestLookupPagesThroughEverything follows the cursors with every page size
// over a tree reached through two grants: the pages must join into every
// company once, in order, whichever IDs the bounded selection dropped.
func TestLookupPagesThroughEverything(t *testing.T) {
	rels, ids := wideTree("u", 3, 4, 2) // 40 companies
	rels = append(rels, authz.Relationship{Resource: ids[2], Relation: string(authz.RoleAdmin), SubjectType: authz.TypeUser, SubjectID: "u"})
	g := buildGraph(t, rels)
	want := slices.Sorted(slices.Values(ids))
	for limit := 1; limit <= len(ids)+1; limit++ {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			cursor := ""
			for range len(ids) + 1 {
				page, next, err := g.Lookup("u", authz.PermRead, cursor, limit)
				if err != nil || len(page) > limit {
					t.Fatalf("page after %q: %d companies (%v)", cursor, len(page), err)
				}
				got = append(got, page...)
				if cursor = next; cursor == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages joined = %v, want %v", got, want)
			}
		})
	}
}

func TestLookupOnlyGrantingRoles(t *testing.T) {
	rels, ids := wideTree("u", 3)
	rels = append(rels, authz.Relationship{Resource: ids[2], Relation: string(authz.RoleOwner), SubjectType: authz.TypeUser, SubjectID: "u"})
	g := buildGraph(t, rels)
	tests := []struct {
		perm authz.Permission
		want []string
	}{
		{authz.PermRead, slices.Sorted(slices.Values(ids))},
		{authz.PermDelete, ids[2:3]}, // the viewer role on the root does not grant it
	}
	for _, tt := range tests {
		t.Run(string(tt.perm), func(t *testing.T) {
			if got, next, err := g.Lookup("u", tt.perm, "", 10); err != nil || !slices.Equal(got, tt.want) || next != "" {
				t.Errorf("Lookup %s = %v next %q (%v), want %v", tt.perm, got, next, err, tt.want)
			}
		})
	}
}

// BenchmarkLookup is one page of 100 for a user who reads a whole tree of
// 2,000 or 200,000 companies: the first page, and one near the end.
func BenchmarkLookup(b *testing.B) {
	for _, size := range []struct {
		name    string
		fanouts []int
	}{
		{"2k", []int{20, 100}},
		{"200k", []int{200, 1000}},
	} {
		rels, ids := wideTree("u", size.fanouts...)
		g := buildGraph(b, rels)
		sorted := slices.Sorted(slices.Values(ids))
		for _, page := range []struct {
			name   string
			cursor string
		}{
			{"first", ""},
			{"near-end", sorted[len(sorted)-150]},
		} {
			b.Run(size.name+"/"+page.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if got, _, err := g.Lookup("u", authz.PermRead, page.cursor, 100); err != nil || len(got) != 100 {
						b.Fatalf("page of %d (%v)", len(got), err)
					}
				}
			})
		}
	}
}
