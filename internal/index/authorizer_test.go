package index_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/index"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// fixture is an Authorizer over a real embedded SpiceDB.
type fixture struct {
	sdb *spicedb.Embedded
	a   *index.Authorizer
	reg *prometheus.Registry
}

func start(t testing.TB, sdb *spicedb.Embedded, src index.Source, cfg index.Config) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := index.NewAuthorizer(cfg, src, sdb.Client, sdb.Client, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	f := &fixture{sdb: sdb, a: a, reg: reg}
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := f.metric(t, "tenantgate_index_loads_total"); n < 1 {
			return errors.New("index not loaded")
		}
		return nil
	})
	return f
}

func (f *fixture) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return testutil.MetricValue(t, f.reg, name, labels...)
}

func role(company string, r authz.Role, user string) authz.Relationship {
	return authz.Relationship{Resource: company, Relation: string(r), SubjectType: authz.TypeUser, SubjectID: user}
}

func parent(child, of string) authz.Relationship {
	return authz.Relationship{Resource: child, Relation: authz.RelationParent, SubjectType: authz.TypeCompany, SubjectID: of}
}

func write(t *testing.T, sdb *spicedb.Embedded, op authz.Op, rels ...authz.Relationship) string {
	t.Helper()
	updates := make([]authz.Update, len(rels))
	for i, r := range rels {
		updates[i] = authz.Update{Op: op, Rel: r}
	}
	token, err := sdb.Write(context.Background(), updates)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func check(t *testing.T, a *index.Authorizer, user string, p authz.Permission, company, token string) bool {
	t.Helper()
	allowed, _, err := a.Check(context.Background(), authz.CheckRequest{User: user, Permission: p, Company: company}, authz.Consistency{AtLeastAsFresh: token})
	if err != nil {
		t.Fatalf("check %s %s %s: %v", user, p, company, err)
	}
	return allowed
}

func TestIndexFollowsSpiceDB(t *testing.T) {
	sdb := spicedbtest.NewEmbedded(t)
	// Loaded by the export: a tree and a role on its root.
	write(t, sdb, authz.OpTouch, parent("emea", "holding"), parent("paris", "emea"), role("holding", authz.RoleViewer, "vera"))
	f := start(t, sdb, sdb.Client, index.Config{Wait: 5 * time.Second, VerifyFraction: 1})

	// Followed through Watch: each read carries the write's token, so it
	// must reflect the write, and the index waits for it.
	token := write(t, sdb, authz.OpTouch, role("emea", authz.RoleAdmin, "adam"))
	tests := []struct {
		user    string
		perm    authz.Permission
		company string
		want    bool
	}{
		{"vera", authz.PermRead, "paris", true},
		{"vera", authz.PermUpdate, "paris", false},
		{"adam", authz.PermManageMembers, "paris", true},
		{"adam", authz.PermManageOwners, "paris", false},
		{"adam", authz.PermRead, "holding", false},
		{"nobody", authz.PermRead, "paris", false},
	}
	for _, tt := range tests {
		if got := check(t, f.a, tt.user, tt.perm, tt.company, token); got != tt.want {
			t.Errorf("%s %s %s = %v, want %v", tt.user, tt.perm, tt.company, got, tt.want)
		}
	}

	reqs := []authz.CheckRequest{{User: "adam", Permission: authz.PermRead, Company: "emea"}, {User: "adam", Permission: authz.PermDelete, Company: "holding"}}
	if got, _, err := f.a.CheckBulk(context.Background(), reqs, authz.Consistency{AtLeastAsFresh: token}); err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Errorf("bulk = %v, %v; want [true false]", got, err)
	}
	page, next, err := f.a.LookupCompanies(context.Background(), "adam", authz.PermRead, authz.Consistency{AtLeastAsFresh: token}, 1, "")
	if err != nil || !slices.Equal(page, []string{"emea"}) || next != "emea" {
		t.Errorf("first page %v next %q (%v), want [emea] next emea", page, next, err)
	}
	page, next, err = f.a.LookupCompanies(context.Background(), "adam", authz.PermRead, authz.Consistency{AtLeastAsFresh: token}, 1, next)
	if err != nil || !slices.Equal(page, []string{"paris"}) || next != "" {
		t.Errorf("second page %v next %q (%v), want [paris] and no next", page, next, err)
	}

	// A revocation and a move are visible to the next read that carries
	// their token.
	token = write(t, sdb, authz.OpDelete, role("holding", authz.RoleViewer, "vera"))
	if check(t, f.a, "vera", authz.PermRead, "paris", token) {
		t.Error("vera still reads paris after her role was deleted")
	}
	write(t, sdb, authz.OpDelete, parent("paris", "emea"))
	token = write(t, sdb, authz.OpTouch, parent("paris", "holding"))
	if check(t, f.a, "adam", authz.PermRead, "paris", token) {
		t.Error("adam still reads paris after it moved out of emea")
	}

	if n := f.metric(t, "tenantgate_index_reads_total", "answered_by", "spicedb"); n != 0 {
		t.Errorf("%v reads went to SpiceDB; the index should have answered all", n)
	}
	if n := f.metric(t, "tenantgate_index_reads_total", "answered_by", "index"); n != float64(len(tests)+5) {
		t.Errorf("the index answered %v reads, want %d", n, len(tests)+5)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := f.metric(t, "tenantgate_index_verifications_total", "result", "match"); n != float64(len(tests)+5) {
			return fmt.Errorf("%v answers verified as matching SpiceDB, want %d", n, len(tests)+5)
		}
		return nil
	})
	if n := f.metric(t, "tenantgate_index_verifications_total", "result", "mismatch"); n != 0 {
		t.Errorf("%v verifications found a mismatch", n)
	}
	// Two parent links and adam's role.
	if n := f.metric(t, "tenantgate_index_relationships"); n != 3 {
		t.Errorf("index holds %v relationships, want 3", n)
	}
}

// heldSource is the real SpiceDB whose Watch deliveries the test can hold
// back, to put the index behind SpiceDB on purpose.
type heldSource struct {
	*spicedb.Embedded
	release chan struct{}
}

func (s *heldSource) Watch(ctx context.Context, after string, fn func([]authz.Update, string) error) error {
	return s.Embedded.Watch(ctx, after, func(updates []authz.Update, through string) error {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return fn(updates, through)
	})
}

func TestIndexBehindSpiceDBIsNotAnswered(t *testing.T) {
	sdb := spicedbtest.NewEmbedded(t)
	write(t, sdb, authz.OpTouch, role("acme", authz.RoleOwner, "olivia"))
	src := &heldSource{Embedded: sdb, release: make(chan struct{})}
	f := start(t, sdb, src, index.Config{Wait: 50 * time.Millisecond})

	// The index still holds olivia's role; SpiceDB no longer does.
	token := write(t, sdb, authz.OpDelete, role("acme", authz.RoleOwner, "olivia"))
	if check(t, f.a, "olivia", authz.PermRead, "acme", token) {
		t.Fatal("a revoked role was answered from an index that had not seen the revocation")
	}
	if n := f.metric(t, "tenantgate_index_reads_total", "answered_by", "spicedb", "reason", "behind"); n != 1 {
		t.Errorf("%v reads fell back because the index was behind, want 1", n)
	}
	// Without a token of its own the read still answers, from the index:
	// nothing asks for the newer revision (the gateway's floor would).
	if !check(t, f.a, "olivia", authz.PermRead, "acme", "") {
		t.Error("a read with no freshness demand was not answered from the index")
	}

	close(src.release)
	testutil.Eventually(t, 10*time.Second, func() error {
		if check(t, f.a, "olivia", authz.PermRead, "acme", token) {
			return errors.New("still allowed")
		}
		if n := f.metric(t, "tenantgate_index_reads_total", "answered_by", "index", "reason", "fresh"); n < 2 {
			return fmt.Errorf("the index answered %v reads, want the last one too", n)
		}
		return nil
	})
}

// phantomSource exports one relationship SpiceDB does not hold: an index
// that is wrong on purpose, for the verification to catch.
type phantomSource struct {
	*spicedb.Embedded
	phantom authz.Relationship
}

func (s *phantomSource) Export(ctx context.Context, fn func(authz.Relationship) error) (string, error) {
	token, err := s.Embedded.Export(ctx, fn)
	if err != nil {
		return "", err
	}
	return token, fn(s.phantom)
}

func TestVerificationCatchesAWrongIndex(t *testing.T) {
	sdb := spicedbtest.NewEmbedded(t)
	write(t, sdb, authz.OpTouch, role("acme", authz.RoleViewer, "vera"))
	f := start(t, sdb, &phantomSource{Embedded: sdb, phantom: role("acme", authz.RoleOwner, "mallory")}, index.Config{Wait: time.Second, VerifyFraction: 1})

	if !check(t, f.a, "vera", authz.PermRead, "acme", "") || !check(t, f.a, "mallory", authz.PermRead, "acme", "") {
		t.Fatal("the index does not answer from what it loaded")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		match := f.metric(t, "tenantgate_index_verifications_total", "result", "match")
		mismatch := f.metric(t, "tenantgate_index_verifications_total", "result", "mismatch")
		if match != 1 || mismatch != 1 {
			return fmt.Errorf("%v matches and %v mismatches, want 1 and 1", match, mismatch)
		}
		return nil
	})
}

func TestMalformedConsistencyTokenIsInvalid(t *testing.T) {
	sdb := spicedbtest.NewEmbedded(t)
	f := start(t, sdb, sdb.Client, index.Config{Wait: time.Second})
	_, _, err := f.a.Check(context.Background(), authz.CheckRequest{User: "u", Permission: authz.PermRead, Company: "c"}, authz.Consistency{AtLeastAsFresh: "not-a-token"})
	if !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("err = %v, want authz.ErrInvalid", err)
	}
	_, _, err = f.a.Check(context.Background(), authz.CheckRequest{User: authz.WildcardUser, Permission: authz.PermRead, Company: "c"}, authz.Consistency{})
	if !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("wildcard user: err = %v, want authz.ErrInvalid", err)
	}
}
