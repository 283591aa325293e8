package schema_test

import (
	"context"
	"embed"
	"fmt"
	"strings"
	"testing"

	"github.com/authzed/spicedb/pkg/development"
	devinterface "github.com/authzed/spicedb/pkg/proto/developer/v1"
	dispatchv1 "github.com/authzed/spicedb/pkg/proto/dispatch/v1"
	"github.com/authzed/spicedb/pkg/tuple"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/schema"
)

// files is what tenantgate.yaml's schemaFile is resolved against, so the test
// reads the same .zed that schema.Schema embeds.
//
//go:embed tenantgate.yaml tenantgate.zed
var files embed.FS

func TestValidationFile(t *testing.T) {
	yamlBytes, err := files.ReadFile("tenantgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yctx, devErrs, err := development.NewDevContextForYAML(context.Background(), yamlBytes, development.WithSourceFS(files))
	if err != nil {
		t.Fatalf("loading tenantgate.yaml: %v", err)
	}
	if devErrs != nil {
		t.Fatalf("tenantgate.yaml has input errors:\n%s", formatDevErrors(devErrs.InputErrors))
	}
	dc := yctx.DevContext
	t.Cleanup(dc.Dispose)

	// An empty block would make the runs below pass vacuously.
	if len(yctx.Assertions.AssertTrue) == 0 || len(yctx.Assertions.AssertFalse) == 0 {
		t.Fatalf("tenantgate.yaml has %d assertTrue and %d assertFalse entries; want both non-empty",
			len(yctx.Assertions.AssertTrue), len(yctx.Assertions.AssertFalse))
	}
	if len(yctx.ExpectedRelations.ValidationMap) == 0 {
		t.Fatal("tenantgate.yaml has no validation entries")
	}

	t.Run("assertions", func(t *testing.T) {
		failures, err := development.RunAllAssertions(dc, &yctx.Assertions)
		if err != nil {
			t.Fatalf("running assertions: %v", err)
		}
		if len(failures) > 0 {
			t.Errorf("%d of %d assertions failed:\n%s", len(failures),
				len(yctx.Assertions.AssertTrue)+len(yctx.Assertions.AssertFalse), formatDevErrors(failures))
		}
	})

	t.Run("validation", func(t *testing.T) {
		_, failures, err := development.RunValidation(dc, &yctx.ExpectedRelations)
		if err != nil {
			t.Fatalf("running validation: %v", err)
		}
		if len(failures) > 0 {
			t.Errorf("validation block does not match the computed relations:\n%s", formatDevErrors(failures))
		}
	})

	t.Run("no schema warnings", func(t *testing.T) {
		warnings, err := development.GetWarnings(dc.Ctx, dc)
		if err != nil {
			t.Fatalf("computing warnings: %v", err)
		}
		for _, w := range warnings {
			t.Errorf("schema warning at line %d: %s (%s)", w.Line, w.Message, w.SourceCode)
		}
	})
}

// TestSchemaMatchesRoleTable checks the schema against authz's role table,
// which the rest of tenantgate computes expectations from: the two copies of
// the model must never drift apart.
func TestSchemaMatchesRoleTable(t *testing.T) {
	// The role is held on c itself, or on its grandparent so that the
	// recursive parent arrow is exercised over more than one hop.
	chains := []struct {
		name   string
		holder string
		links  []string
	}{
		{name: "direct", holder: "c"},
		{name: "two levels up", holder: "g", links: []string{"company:c#parent@company:p", "company:p#parent@company:g"}},
	}

	for _, role := range authz.Roles {
		for _, chain := range chains {
			rels := append([]string{fmt.Sprintf("company:%s#%s@user:u", chain.holder, role)}, chain.links...)
			dc := newDevContext(t, rels...)

			for _, perm := range authz.Permissions {
				t.Run(fmt.Sprintf("%s/%s/%s", role, chain.name, perm), func(t *testing.T) {
					want := role.Grants(perm)
					if got := check(t, dc, "c", perm, "u"); got != want {
						t.Errorf("%s on %s: company:c#%s@user:u = %v, role table says %v", role, chain.holder, perm, got, want)
					}
					// Nothing in this data may reach a user without a membership.
					if check(t, dc, "c", perm, "other") {
						t.Errorf("company:c#%s@user:other is allowed without any membership", perm)
					}
				})
			}
		}
	}
}

func TestSchemaRejectsWildcards(t *testing.T) {
	relations := []string{string(authz.RoleOwner), string(authz.RoleAdmin), string(authz.RoleEditor), string(authz.RoleViewer)}
	for _, relation := range relations {
		t.Run(relation, func(t *testing.T) {
			// The concrete form must load, or a broken setup would make the
			// wildcard rejection below meaningless.
			if devErrs := loadErrors(t, fmt.Sprintf("company:c#%s@user:u", relation)); devErrs != nil {
				t.Fatalf("a concrete user is rejected:\n%s", formatDevErrors(devErrs.InputErrors))
			}

			rel := fmt.Sprintf("company:c#%s@user:%s", relation, authz.WildcardUser)
			devErrs := loadErrors(t, rel)
			if devErrs == nil {
				t.Fatalf("%s was accepted; the schema must not allow user:*", rel)
			}
			if len(devErrs.InputErrors) != 1 || devErrs.InputErrors[0].Kind != devinterface.DeveloperError_INVALID_SUBJECT_TYPE {
				t.Fatalf("%s: want one INVALID_SUBJECT_TYPE error, got:\n%s", rel, formatDevErrors(devErrs.InputErrors))
			}
		})
	}
	t.Run("parent", func(t *testing.T) {
		devErrs := loadErrors(t, "company:c#parent@company:*")
		if devErrs == nil {
			t.Fatal("company:c#parent@company:* was accepted; a wildcard parent would make every company an ancestor")
		}
	})
}

// newDevContext loads schema.Schema and the given relationships into a fresh
// in-memory SpiceDB and fails the test on any input error.
func newDevContext(t *testing.T, rels ...string) *development.DevContext {
	t.Helper()
	dc, devErrs, err := development.NewDevContext(context.Background(), requestContext(t, rels...))
	if err != nil {
		t.Fatalf("creating dev context: %v", err)
	}
	if devErrs != nil {
		t.Fatalf("input errors for %v:\n%s", rels, formatDevErrors(devErrs.InputErrors))
	}
	t.Cleanup(dc.Dispose)
	return dc
}

// loadErrors loads schema.Schema and the given relationships and returns the
// developer errors, nil if everything loaded.
func loadErrors(t *testing.T, rels ...string) *devinterface.DeveloperErrors {
	t.Helper()
	dc, devErrs, err := development.NewDevContext(context.Background(), requestContext(t, rels...))
	if err != nil {
		t.Fatalf("creating dev context: %v", err)
	}
	if dc != nil {
		dc.Dispose()
	}
	return devErrs
}

func requestContext(t *testing.T, rels ...string) *devinterface.RequestContext {
	t.Helper()
	rc := &devinterface.RequestContext{Schema: schema.Schema}
	for _, s := range rels {
		rel, err := tuple.Parse(s)
		if err != nil {
			t.Fatalf("parsing %q: %v", s, err)
		}
		rc.Relationships = append(rc.Relationships, rel.ToCoreTuple())
	}
	return rc
}

// check reports whether user holds perm on company; a caveated or errored
// answer fails the test, since the schema has no caveats.
func check(t *testing.T, dc *development.DevContext, company string, perm authz.Permission, user string) bool {
	t.Helper()
	res, err := development.RunCheck(dc,
		tuple.ONR(authz.TypeCompany, company, string(perm)),
		tuple.ONR(authz.TypeUser, user, tuple.Ellipsis),
		nil)
	if err != nil {
		t.Fatalf("check company:%s#%s@user:%s: %v", company, perm, user, err)
	}
	switch res.Permissionship {
	case dispatchv1.ResourceCheckResult_MEMBER:
		return true
	case dispatchv1.ResourceCheckResult_NOT_MEMBER:
		return false
	default:
		t.Fatalf("check company:%s#%s@user:%s: unexpected result %v", company, perm, user, res.Permissionship)
		return false
	}
}

func formatDevErrors(errs []*devinterface.DeveloperError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s line %d col %d: %s [%s]\n", e.Source, e.Line, e.Column, e.Message, e.Context)
	}
	return b.String()
}
