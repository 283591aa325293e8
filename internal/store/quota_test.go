package store_test

import (
	"errors"
	"fmt"
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
