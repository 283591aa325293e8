package schema_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/authzed/spicedb/pkg/validationfile"
	"github.com/authzed/spicedb/pkg/validationfile/blocks"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/index"
)

// The permission index answers without SpiceDB, from the role table and
// the parent walk it implements itself. These tests hold it to the schema:
// the validation file's assertions, and SpiceDB's own answers on random
// data, so a change to tenantgate.zed that the index does not follow fails
// here.

func TestIndexKeepsTheValidationFile(t *testing.T) {
	yamlBytes, err := files.ReadFile("tenantgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vf, err := validationfile.DecodeValidationFile(yamlBytes)
	if err != nil {
		t.Fatalf("decoding tenantgate.yaml: %v", err)
	}
	rels := make([]authz.Relationship, 0, len(vf.Relationships.Relationships))
	for _, r := range vf.Relationships.Relationships {
		rels = append(rels, authz.Relationship{
			Resource: r.Resource.ObjectID, Relation: r.Resource.Relation,
			SubjectType: r.Subject.ObjectType, SubjectID: r.Subject.ObjectID,
		})
	}
	g, err := index.Build(slices.Values(rels))
	if err != nil {
		t.Fatal(err)
	}
	if g.Relationships() != len(rels) {
		t.Fatalf("index holds %d relationships, the file has %d", g.Relationships(), len(rels))
	}
	for want, assertions := range map[bool][]tupleAssertion{
		true:  assertionsOf(vf.Assertions.AssertTrue),
		false: assertionsOf(vf.Assertions.AssertFalse),
	} {
		if len(assertions) == 0 {
			t.Fatalf("no assert%v entries: the test would pass vacuously", want)
		}
		for _, a := range assertions {
			got, err := g.Check(a.user, a.perm, a.company)
			if err != nil || got != want {
				t.Errorf("%s: index says %v (err %v), the file asserts %v", a.text, got, err, want)
			}
		}
	}
}

type tupleAssertion struct {
	text          string
	user, company string
	perm          authz.Permission
}

func assertionsOf(list []blocks.Assertion) []tupleAssertion {
	out := make([]tupleAssertion, len(list))
	for i, a := range list {
		r := a.Relationship
		out[i] = tupleAssertion{
			text: a.RelationshipWithContextString,
			user: r.Subject.ObjectID, company: r.Resource.ObjectID, perm: authz.Permission(r.Resource.Relation),
		}
	}
	return out
}

// TestIndexAgreesWithSpiceDB builds random forests and memberships
// (several roles per user and company, and now and then a second parent,
// which SpiceDB accepts though the store never writes it), deletes some of
// them again through the index's update path, and compares every check of
// every user, permission and company with SpiceDB's evaluation of the
// schema; every list must be exactly the companies the checks allow.
func TestIndexAgreesWithSpiceDB(t *testing.T) {
	const (
		seeds     = 8
		companies = 24
		users     = 6
	)
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 12))
			kept, deleted := randomRelationships(rng, companies, users)
			g, err := index.Build(slices.Values(append(slices.Clone(kept), deleted...)))
			if err != nil {
				t.Fatal(err)
			}
			for _, rel := range deleted {
				if err := g.Apply(authz.Update{Op: authz.OpDelete, Rel: rel}); err != nil {
					t.Fatal(err)
				}
			}
			if g.Relationships() != len(kept) {
				t.Fatalf("index holds %d relationships, want %d", g.Relationships(), len(kept))
			}
			texts := make([]string, len(kept))
			for i, r := range kept {
				texts[i] = fmt.Sprintf("company:%s#%s@%s:%s", r.Resource, r.Relation, r.SubjectType, r.SubjectID)
			}
			dc := newDevContext(t, texts...)
			allowedChecks := 0
			for u := range users {
				user := fmt.Sprintf("u%d", u)
				for _, perm := range authz.Permissions {
					var want []string
					for c := range companies {
						company := fmt.Sprintf("c%02d", c)
						spicedb := check(t, dc, company, perm, user)
						got, err := g.Check(user, perm, company)
						if err != nil || got != spicedb {
							t.Errorf("company:%s#%s@user:%s: index %v (err %v), SpiceDB %v", company, perm, user, got, err, spicedb)
						}
						if spicedb {
							want = append(want, company)
							allowedChecks++
						}
					}
					if got := lookupAll(t, g, user, perm); !slices.Equal(got, want) {
						t.Errorf("lookup %s %s: index %v, checks allow %v", user, perm, got, want)
					}
				}
			}
			// Random data that allows nothing, or everything, would
			// prove little.
			if all := users * len(authz.Permissions) * companies; allowedChecks == 0 || allowedChecks == all {
				t.Fatalf("%d of %d checks allowed: the data does not exercise the index", allowedChecks, all)
			}
		})
	}
}

// randomRelationships makes a forest (each company's parent sorts before
// it, so there is no cycle), role relationships, and a share of both to be
// deleted again.
func randomRelationships(rng *rand.Rand, companies, users int) (kept, deleted []authz.Relationship) {
	add := func(rel authz.Relationship) {
		if slices.Contains(kept, rel) || slices.Contains(deleted, rel) {
			return
		}
		if rng.IntN(5) == 0 {
			deleted = append(deleted, rel)
		} else {
			kept = append(kept, rel)
		}
	}
	for c := 1; c < companies; c++ {
		parents := 0
		if rng.IntN(4) != 0 {
			parents = 1
		}
		if rng.IntN(10) == 0 {
			parents = 2
		}
		for range parents {
			add(authz.Relationship{Resource: fmt.Sprintf("c%02d", c), Relation: authz.RelationParent,
				SubjectType: authz.TypeCompany, SubjectID: fmt.Sprintf("c%02d", rng.IntN(c))})
		}
	}
	for range users * 3 {
		add(authz.Relationship{Resource: fmt.Sprintf("c%02d", rng.IntN(companies)), Relation: string(authz.Roles[rng.IntN(len(authz.Roles))]),
			SubjectType: authz.TypeUser, SubjectID: fmt.Sprintf("u%d", rng.IntN(users))})
	}
	return kept, deleted
}

// lookupAll reads every page of a lookup, three companies at a time so
// cursors are exercised.
func lookupAll(t *testing.T, g *index.Graph, user string, perm authz.Permission) []string {
	t.Helper()
	var all []string
	cursor := ""
	for {
		page, next, err := g.Lookup(user, perm, cursor, 3)
		if err != nil {
			t.Fatalf("lookup %s %s: %v", user, perm, err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}
