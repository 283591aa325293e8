package spicedb

// These tests are in package spicedb, not spicedb_test, because SpiceDB
// accepts caveated and expiring relationships only through its own API,
// which the Client does not expose.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func roleOn(company string, role authz.Role, user string) authz.Update {
	return authz.Update{Op: authz.OpTouch, Rel: authz.Relationship{Resource: company, Relation: string(role), SubjectType: authz.TypeUser, SubjectID: user}}
}

func parentOn(child, parent string) authz.Update {
	return authz.Update{Op: authz.OpTouch, Rel: authz.Relationship{Resource: child, Relation: authz.RelationParent, SubjectType: authz.TypeCompany, SubjectID: parent}}
}

func deleted(u authz.Update) authz.Update {
	u.Op = authz.OpDelete
	return u
}

func writeExplain(t *testing.T, e *Embedded, updates ...authz.Update) string {
	t.Helper()
	token, err := e.Write(t.Context(), updates)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if token == "" {
		t.Fatal("write returned no revision token")
	}
	return token
}

func explainFacts(t *testing.T, e *Embedded, user, company, token string) authz.ExplainFacts {
	t.Helper()
	facts, err := e.ExplainFacts(t.Context(), user, company, token)
	if err != nil {
		t.Fatalf("explain facts of %q on %q: %v", user, company, err)
	}
	return facts
}

func assertFacts(t *testing.T, got, want authz.ExplainFacts) {
	t.Helper()
	if !slices.Equal(got.Chain, want.Chain) {
		t.Errorf("chain = %q, want %q", got.Chain, want.Chain)
	}
	if got.Roles == nil {
		t.Error("roles = nil, want a map")
	}
	if !maps.EqualFunc(got.Roles, want.Roles, slices.Equal) {
		t.Errorf("roles = %q, want %q", got.Roles, want.Roles)
	}
}

func TestExplainFactsReadsChainAndDirectRoles(t *testing.T) {
	e := StartTestServer(t)
	// IDs outside SpiceDB's alphabet, so every read and every answer goes
	// through the encoding.
	const (
		root  = "Holding AG (Zürich)"
		mid   = "mid@corp 2"
		leaf  = "Tochter GmbH/Köln"
		ana   = "ana maría@example.com"
		bob   = "bob o'neil@example.com"
		nobod = "nobody at all"
	)
	token := writeExplain(t, e,
		parentOn(leaf, mid), parentOn(mid, root),
		roleOn(root, authz.RoleViewer, ana), roleOn(root, authz.RoleOwner, ana),
		roleOn(leaf, authz.RoleEditor, ana),
		roleOn(mid, authz.RoleAdmin, bob),
	)
	for _, tt := range []struct {
		name          string
		user, company string
		want          authz.ExplainFacts
	}{
		{"roles on two of three levels", ana, leaf, authz.ExplainFacts{
			Chain: []string{leaf, mid, root},
			Roles: map[string][]authz.Role{leaf: {authz.RoleEditor}, root: {authz.RoleOwner, authz.RoleViewer}},
		}},
		{"from the middle", ana, mid, authz.ExplainFacts{
			Chain: []string{mid, root},
			Roles: map[string][]authz.Role{root: {authz.RoleOwner, authz.RoleViewer}},
		}},
		{"a role on the middle only", bob, leaf, authz.ExplainFacts{
			Chain: []string{leaf, mid, root},
			Roles: map[string][]authz.Role{mid: {authz.RoleAdmin}},
		}},
		{"at the root", bob, root, authz.ExplainFacts{
			Chain: []string{root},
			Roles: map[string][]authz.Role{},
		}},
		{"a user without roles", nobod, leaf, authz.ExplainFacts{
			Chain: []string{leaf, mid, root},
			Roles: map[string][]authz.Role{},
		}},
		{"a company SpiceDB holds nothing about", ana, "no such company", authz.ExplainFacts{
			Chain: []string{"no such company"},
			Roles: map[string][]authz.Role{},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertFacts(t, explainFacts(t, e, tt.user, tt.company, token), tt.want)
		})
	}
}

func TestExplainFactsReadsAtTheExactRevision(t *testing.T) {
	e := StartTestServer(t)
	old := writeExplain(t, e,
		parentOn("leaf", "mid"),
		roleOn("leaf", authz.RoleViewer, "u"), roleOn("mid", authz.RoleAdmin, "u"),
	)
	// After old: mid gets a parent, the admin role is revoked, a new role
	// appears on leaf.
	current := writeExplain(t, e,
		parentOn("mid", "root"),
		deleted(roleOn("mid", authz.RoleAdmin, "u")),
		roleOn("leaf", authz.RoleOwner, "u"),
	)
	for _, tt := range []struct {
		name  string
		token string
		want  authz.ExplainFacts
	}{
		{"old token", old, authz.ExplainFacts{
			Chain: []string{"leaf", "mid"},
			Roles: map[string][]authz.Role{"leaf": {authz.RoleViewer}, "mid": {authz.RoleAdmin}},
		}},
		{"current token", current, authz.ExplainFacts{
			Chain: []string{"leaf", "mid", "root"},
			Roles: map[string][]authz.Role{"leaf": {authz.RoleOwner, authz.RoleViewer}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertFacts(t, explainFacts(t, e, "u", "leaf", tt.token), tt.want)
		})
	}
}

func TestExplainFactsRefusesBadRequests(t *testing.T) {
	e := StartTestServer(t)
	token := writeExplain(t, e, roleOn("c", authz.RoleOwner, "u"))
	for _, tt := range []struct {
		name                 string
		user, company, token string
	}{
		{"malformed token", "u", "c", "not-a-zedtoken"},
		{"no token", "u", "c", ""},
		{"wildcard user", authz.WildcardUser, "c", token},
		{"empty company", "u", "", token},
	} {
		t.Run(tt.name, func(t *testing.T) {
			facts, err := e.ExplainFacts(t.Context(), tt.user, tt.company, tt.token)
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("explain facts = %+v, %v; want ErrInvalid", facts, err)
			}
		})
	}
}

// schemaWithStrays is tenantgate's company with what the sync never writes:
// a caveat, an expiry and a relation that is no role.
const schemaWithStrays = `use expiration

definition user {}

caveat on_day(day string) {
    day == "monday"
}

definition company {
    relation parent: company
    relation owner: user
    relation admin: user | user with expiration
    relation editor: user | user with on_day
    relation viewer: user
    relation auditor: user
}
`

func TestExplainFactsRefusesWhatTheModelNeverHolds(t *testing.T) {
	e := StartTestServer(t)
	if err := e.WriteSchema(t.Context(), schemaWithStrays); err != nil {
		t.Fatalf("write schema: %v", err)
	}
	updates := []authz.Update{
		parentOn("twins", "mum"), parentOn("twins", "dad"),
		parentOn("loop-a", "loop-b"), parentOn("loop-b", "loop-c"), parentOn("loop-c", "loop-a"),
		parentOn("self", "self"),
		parentOn("under-auditor", "audited"),
		{Op: authz.OpTouch, Rel: authz.Relationship{Resource: "audited", Relation: "auditor", SubjectType: authz.TypeUser, SubjectID: "u"}},
	}
	// deep-0 is a root and deep-i a child of deep-(i-1): deep-49 has a chain
	// of maxChain companies, deep-50 one more.
	for i := 1; i <= maxChain; i++ {
		updates = append(updates, parentOn(fmt.Sprintf("deep-%d", i), fmt.Sprintf("deep-%d", i-1)))
	}
	updates = append(updates, roleOn("deep-0", authz.RoleViewer, "u"))
	writeExplain(t, e, updates...)
	expires := timestamppb.New(time.Now().Add(time.Hour))
	day, err := structpb.NewStruct(map[string]any{"day": "monday"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.perms.WriteRelationships(t.Context(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
			Resource: companyRef("expiring"), Relation: "admin", Subject: userRef("u"), OptionalExpiresAt: expires,
		}},
		{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
			Resource: companyRef("caveated"), Relation: "editor", Subject: userRef("u"),
			OptionalCaveat: &v1.ContextualizedCaveat{CaveatName: "on_day", Context: day},
		}},
		{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: toV1(parentOn("under-expiring", "expiring").Rel)},
	}})
	if err != nil {
		t.Fatalf("write caveated and expiring relationships: %v", err)
	}
	token := resp.GetWrittenAt().GetToken()

	t.Run("the longest chain allowed", func(t *testing.T) {
		facts := explainFacts(t, e, "u", "deep-49", token)
		if len(facts.Chain) != maxChain || facts.Chain[maxChain-1] != "deep-0" {
			t.Fatalf("chain = %q, want deep-49 down to deep-0", facts.Chain)
		}
		if want := map[string][]authz.Role{"deep-0": {authz.RoleViewer}}; !maps.EqualFunc(facts.Roles, want, slices.Equal) {
			t.Errorf("roles = %q, want %q", facts.Roles, want)
		}
	})
	for _, tt := range []struct {
		name, company string
		why           string // in the error
	}{
		{"two parents", "twins", "more than one parent"},
		{"a cycle", "loop-a", "loops"},
		{"its own parent", "self", "loops"},
		{"a chain one longer than allowed", fmt.Sprintf("deep-%d", maxChain), "longer than"},
		{"a relation that is no role", "audited", "not a role"},
		{"a relation that is no role above", "under-auditor", "not a role"},
		{"an expiring role", "expiring", "expiry"},
		{"an expiring role above", "under-expiring", "expiry"},
		{"a caveated role", "caveated", "caveat"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			facts, err := e.ExplainFacts(t.Context(), "u", tt.company, token)
			if err == nil || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("explain facts = %+v, %v; want an error about %q", facts, err, tt.why)
			}
		})
	}
}

func TestExplainFactsFailsClosedWithoutSpiceDB(t *testing.T) {
	e := StartTestServer(t)
	token := writeExplain(t, e, roleOn("c", authz.RoleOwner, "u"))
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if facts, err := e.ExplainFacts(canceled, "u", "c", token); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("explain facts with a canceled context = %+v, %v; want ErrUnavailable", facts, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if facts, err := e.ExplainFacts(ctx, "u", "c", token); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("explain facts on a stopped server = %+v, %v; want ErrUnavailable", facts, err)
	}
}
