package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestQuotas: creations stop at the quota of owned companies and at the
// fan-out bound, including when many are asked for at once.
func TestQuotas(t *testing.T) {
	t.Parallel()
	s := openStore(t, testutil.NewTestDatabase(t))
	s.SetQuotas(authz.Quotas{MaxOwned: 4, MaxChildren: 2})
	ann := authz.Actor{ID: "ann"}
	if _, _, err := s.CreateCompany(t.Context(), ann, authz.Company{ID: "root", Name: "Root"}); err != nil {
		t.Fatal(err)
	}
	// Six children asked for at once: the fan-out bound lets exactly two
	// in, whatever the interleaving.
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			_, _, errs[i] = s.CreateCompany(t.Context(), ann, authz.Company{ID: fmt.Sprintf("kid-%d", i), Name: "Kid", ParentID: "root"})
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, authz.ErrConflict):
			t.Errorf("unexpected refusal: %v", err)
		}
	}
	if created != 2 {
		t.Fatalf("%d children created under a parent bounded to 2", created)
	}
	// ann owns root and two children: one more root, then the quota.
	if _, _, err := s.CreateCompany(t.Context(), ann, authz.Company{ID: "second", Name: "Second"}); err != nil {
		t.Fatalf("fourth company: %v", err)
	}
	_, _, err := s.CreateCompany(t.Context(), ann, authz.Company{ID: "fifth", Name: "Fifth"})
	if !errors.Is(err, authz.ErrConflict) {
		t.Fatalf("fifth company: %v, want a quota conflict", err)
	}
	// A move may not overfill a parent either.
	if _, _, err := s.UpdateCompany(t.Context(), ann, "second", authz.CompanyUpdate{ParentID: ptr("root")}); !errors.Is(err, authz.ErrConflict) {
		t.Errorf("move under a full parent: %v, want a conflict", err)
	}
	// Another user is not held to ann's quota.
	if _, _, err := s.CreateCompany(t.Context(), authz.Actor{ID: "bo"}, authz.Company{ID: "bos", Name: "Bo's"}); err != nil {
		t.Errorf("another user: %v", err)
	}
}

// TestTreeSizeQuota: a tree stops growing at --max-tree-size whether the
// companies come one by one, at once under different parents, or as a
// subtree moved in from another tree; moves within a full tree go on.
func TestTreeSizeQuota(t *testing.T) {
	t.Parallel()
	s := openStore(t, testutil.NewTestDatabase(t))
	s.SetQuotas(authz.Quotas{MaxTreeSize: 6})
	ann := authz.Actor{ID: "ann"}
	create := func(id, parent string) error {
		t.Helper()
		_, _, err := s.CreateCompany(t.Context(), ann, authz.Company{ID: id, Name: id, ParentID: parent})
		return err
	}
	for _, c := range [][2]string{{"root", ""}, {"a", "root"}, {"b", "root"}, {"other", ""}, {"o1", "other"}, {"o2", "o1"}} {
		if err := create(c[0], c[1]); err != nil {
			t.Fatalf("create %s: %v", c[0], err)
		}
	}
	// root holds 3; eight more asked for at once, under three parents of
	// the tree: exactly three fit, whatever the interleaving.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		parent := []string{"root", "a", "b"}[i%3]
		wg.Go(func() { errs[i] = create(fmt.Sprintf("n%d", i), parent) })
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		default:
			wantTreeQuota(t, "a create into a full tree", err)
		}
	}
	if created != 3 {
		t.Fatalf("%d companies created in a tree of 3 bounded to 6", created)
	}
	// A full tree refuses a subtree from another tree, even of one company.
	_, _, err := s.UpdateCompany(t.Context(), ann, "o2", authz.CompanyUpdate{ParentID: ptr("a")})
	wantTreeQuota(t, "move into a full tree", err)
	// Within the full tree a move changes nothing of its size.
	if _, _, err := s.UpdateCompany(t.Context(), ann, "b", authz.CompanyUpdate{ParentID: ptr("a")}); err != nil {
		t.Errorf("move within the full tree: %v", err)
	}
	// The other tree (3 companies) takes a subtree while it fits: o2 out
	// to the root and back is room for it, a 6-company subtree is not.
	if _, _, err := s.UpdateCompany(t.Context(), ann, "o2", authz.CompanyUpdate{ParentID: ptr("")}); err != nil {
		t.Fatalf("move to the root: %v", err)
	}
	if _, _, err := s.UpdateCompany(t.Context(), ann, "o2", authz.CompanyUpdate{ParentID: ptr("other")}); err != nil {
		t.Errorf("move back into a tree with room: %v", err)
	}
	_, _, err = s.UpdateCompany(t.Context(), ann, "root", authz.CompanyUpdate{ParentID: ptr("other")})
	wantTreeQuota(t, "a 6-company tree moved under a 3-company one", err)
}

func wantTreeQuota(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, authz.ErrConflict) || !strings.Contains(err.Error(), "tree would grow past") {
		t.Errorf("%s: %v, want the tree-size quota's conflict", what, err)
	}
}
