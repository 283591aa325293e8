package loadbench

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

var smallSizes = Sizes{Companies: 500, Depth: 4, Users: 300, Memberships: 1500, ListSizes: []int{10, 100, 400}, Seed: 7}

func TestBenchGenerate(t *testing.T) {
	d, err := Generate(smallSizes)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Companies) != smallSizes.Companies || len(d.Memberships) != smallSizes.Memberships {
		t.Fatalf("%d companies, %d memberships; want %d, %d", len(d.Companies), len(d.Memberships), smallSizes.Companies, smallSizes.Memberships)
	}
	depth := map[string]int{}
	for _, c := range d.Companies {
		if c.ParentID == "" {
			depth[c.ID] = 1
			continue
		}
		up, ok := depth[c.ParentID]
		if !ok {
			t.Fatalf("company %s comes before its parent %s", c.ID, c.ParentID)
		}
		if depth[c.ID] = up + 1; depth[c.ID] > smallSizes.Depth {
			t.Fatalf("company %s is %d deep, more than %d", c.ID, depth[c.ID], smallSizes.Depth)
		}
	}
	pairs := map[[2]string]bool{}
	statuses, roles := map[authz.Status]int{}, map[authz.Role]int{}
	for _, m := range d.Memberships {
		key := [2]string{m.UserID, m.CompanyID}
		if pairs[key] {
			t.Fatalf("two memberships of %s in %s", m.UserID, m.CompanyID)
		}
		pairs[key] = true
		statuses[m.Status]++
		roles[m.Role]++
	}
	if len(statuses) != len(authz.Statuses) || len(roles) != len(authz.Roles) {
		t.Errorf("statuses %v and roles %v: want every one of each", statuses, roles)
	}
	truth := NewTruth(d.Companies, d.Memberships)
	for i, size := range smallSizes.ListSizes {
		if got := len(truth.Companies(d.ListUsers[i], authz.PermRead)); got != size {
			t.Errorf("list user %s reads %d companies, want %d", d.ListUsers[i], got, size)
		}
	}
	big := len(truth.Companies(d.BigOwners[0], authz.PermRead))
	if want := int(bigTreeShare * float64(smallSizes.Companies)); big < want {
		t.Errorf("the big tree's owner reads %d companies, want at least %d", big, want)
	}
	again, err := Generate(smallSizes)
	if err != nil || !reflect.DeepEqual(d, again) {
		t.Error("the same sizes and seed generated another data set")
	}
}

func TestBenchSizesValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Sizes)
		want   string
	}{
		{"list larger than the data set", func(s *Sizes) { s.ListSizes = []int{501} }, "list size 501"},
		{"no room for special users", func(s *Sizes) { s.Users = 4 }, "special users"},
		{"more memberships than fit", func(s *Sizes) { s.Memberships = 1_000_000 }, "memberships (1000000)"},
		{"no depth", func(s *Sizes) { s.Depth = 0 }, "depth (0)"},
	}
	if err := smallSizes.Validate(); err != nil {
		t.Fatalf("valid sizes refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smallSizes
			tt.change(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestBenchWorkload(t *testing.T) {
	d, err := Generate(smallSizes)
	if err != nil {
		t.Fatal(err)
	}
	truth := NewTruth(d.Companies, d.Memberships)
	cfg := Config{Sizes: smallSizes, Checks: 400, CheckUsers: 50, Clients: 4, BulkSize: 20}
	w, err := newWorkload(cfg, d, truth)
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for _, c := range w.checks {
		if c.Want != truth.Allowed(c.User, c.Permission, c.Company) {
			t.Fatalf("%s: expectation %t is not the ground truth", c, c.Want)
		}
		if c.Want {
			allowed++
		}
	}
	if len(w.checks) != cfg.Checks || allowed != cfg.Checks/2 {
		t.Errorf("%d checks, %d allowed; want %d, half allowed", len(w.checks), allowed, cfg.Checks)
	}
	if users := len(w.users()); users > cfg.CheckUsers {
		t.Errorf("the checks are about %d users, more than %d", users, cfg.CheckUsers)
	}
	if len(w.batches) != cfg.Checks/cfg.BulkSize {
		t.Errorf("%d bulk calls, want %d", len(w.batches), cfg.Checks/cfg.BulkSize)
	}
	for _, b := range w.batches {
		for _, c := range b {
			if c.User != b[0].User || c.Want != truth.Allowed(c.User, c.Permission, c.Company) {
				t.Fatalf("bulk call about %s holds %s expecting %t", b[0].User, c, c.Want)
			}
		}
	}
}
