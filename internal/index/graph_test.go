package index

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func chain(n int) []authz.Relationship {
	rels := []authz.Relationship{{Resource: "c0", Relation: string(authz.RoleViewer), SubjectType: authz.TypeUser, SubjectID: "u"}}
	for i := 1; i < n; i++ {
		rels = append(rels, authz.Relationship{Resource: fmt.Sprintf("c%d", i), Relation: authz.RelationParent, SubjectType: authz.TypeCompany, SubjectID: fmt.Sprintf("c%d", i-1)})
	}
	return rels
}

func TestWalksAreBounded(t *testing.T) {
	tests := []struct {
		name    string
		length  int
		tooDeep bool
	}{
		{"well within", 10, false},
		{"at the bound", MaxDepth, false},
		{"beyond the bound", MaxDepth + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Build(slices.Values(chain(tt.length)))
			if err != nil {
				t.Fatal(err)
			}
			deepest := fmt.Sprintf("c%d", tt.length-1)
			allowed, err := g.Check("u", authz.PermRead, deepest)
			if tt.tooDeep {
				if !errors.Is(err, errTooDeep) || allowed {
					t.Errorf("check = %v, %v; want errTooDeep and no allow", allowed, err)
				}
				if _, _, err := g.Lookup("u", authz.PermRead, "", 1000); !errors.Is(err, errTooDeep) {
					t.Errorf("lookup err = %v, want errTooDeep", err)
				}
				return
			}
			if err != nil || !allowed {
				t.Errorf("check = %v, %v; want allowed", allowed, err)
			}
			if ids, _, err := g.Lookup("u", authz.PermRead, "", 1000); err != nil || len(ids) != tt.length {
				t.Errorf("lookup found %d companies (%v), want %d", len(ids), err, tt.length)
			}
		})
	}
}

func TestUpdatesMirrorSpiceDBSemantics(t *testing.T) {
	viewer := authz.Relationship{Resource: "c", Relation: string(authz.RoleViewer), SubjectType: authz.TypeUser, SubjectID: "u"}
	owner := viewer
	owner.Relation = string(authz.RoleOwner)
	g := newGraph()
	steps := []struct {
		op      authz.Op
		rel     authz.Relationship
		rels    int
		deletes bool // may u delete c afterwards
	}{
		{authz.OpTouch, viewer, 1, false},
		{authz.OpTouch, viewer, 1, false}, // a touch is idempotent
		{authz.OpTouch, owner, 2, true},   // two roles on one company add up
		{authz.OpDelete, viewer, 1, true},
		{authz.OpDelete, viewer, 1, true}, // so is a delete
		{authz.OpDelete, owner, 0, false},
	}
	for i, s := range steps {
		if err := g.Apply(authz.Update{Op: s.op, Rel: s.rel}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		allowed, err := g.Check("u", authz.PermDelete, "c")
		if err != nil || allowed != s.deletes || g.Relationships() != s.rels {
			t.Errorf("step %d: delete allowed %v (%v) with %d relationships, want %v with %d", i, allowed, err, g.Relationships(), s.deletes, s.rels)
		}
	}
}

func TestUnknownRelationUnloadsTheIndex(t *testing.T) {
	ix := New()
	ix.Load(newGraph(), "t1", 0)
	bad := authz.Update{Op: authz.OpTouch, Rel: authz.Relationship{Resource: "c", Relation: "auditor", SubjectType: authz.TypeUser, SubjectID: "u"}}
	if err := ix.Apply([]authz.Update{bad}, "t2"); err == nil {
		t.Fatal("a relation outside the schema was applied")
	}
	if tok := ix.Token(); tok != "" {
		t.Errorf("index still reflects %q after an update it could not hold; it must answer nothing", tok)
	}
}
