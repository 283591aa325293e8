package loadbench

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Check is one question and the ground truth's answer to it.
type Check struct {
	User       string
	Permission authz.Permission
	Company    string
	Want       bool
}

func (c Check) String() string {
	return fmt.Sprintf("may %s %s company %s", c.User, c.Permission, c.Company)
}

// listJob is one list measurement: every company User may read, which the
// ground truth says are Size.
type listJob struct {
	Size int
	User string
}

// workload is everything a run asks, the same for every system.
type workload struct {
	// warm is asked, untimed, before checks: other questions than the
	// timed ones, so no cache starts with the answers.
	warm, checks []Check
	// batches are bulk calls, each about one user.
	batches [][]Check
	lists   []listJob
}

// maxPickAttempts bounds the search for a check of the wanted answer, so a
// data set that has none ends the run instead of looping.
const maxPickAttempts = 100_000

// picker draws checks, half of them allowed, from a fixed set of users.
type picker struct {
	rng       *rand.Rand
	truth     *Truth
	companies []string
	users     []string
	// seen caches Truth.seen per user.
	seen map[string][]string
}

// newPicker draws checks about users, with answers from t, from rng.
func newPicker(rng *rand.Rand, d *Dataset, t *Truth, users []string) *picker {
	p := &picker{rng: rng, truth: t, users: users, seen: map[string][]string{}}
	for _, c := range d.Companies {
		p.companies = append(p.companies, c.ID)
	}
	return p
}

func newWorkload(cfg Config, d *Dataset, t *Truth) (*workload, error) {
	rng := rand.New(rand.NewPCG(cfg.Sizes.Seed, 0x3c4ec5))
	p := newPicker(rng, d, t, askingUsers(rng, d, cfg.CheckUsers))
	w := &workload{}
	var err error
	if w.warm, err = p.checks(max(1, min(cfg.Checks/10, 1000))); err != nil {
		return nil, err
	}
	if w.checks, err = p.checks(cfg.Checks); err != nil {
		return nil, err
	}
	for range max(cfg.Clients, cfg.Checks/cfg.BulkSize) {
		batch, err := p.batch(cfg.BulkSize)
		if err != nil {
			return nil, err
		}
		w.batches = append(w.batches, batch)
	}
	for i, size := range cfg.Sizes.ListSizes {
		w.lists = append(w.lists, listJob{Size: size, User: d.ListUsers[i]})
	}
	return w, nil
}

// askingUsers are who the checks are about: the big tree's owners and the
// list users, then others at random, n in all.
func askingUsers(rng *rand.Rand, d *Dataset, n int) []string {
	users := append(append([]string{}, d.BigOwners...), d.ListUsers...)
	special := map[string]bool{}
	for _, u := range users {
		special[u] = true
	}
	for _, i := range rng.Perm(len(d.Users)) {
		if len(users) >= n {
			break
		}
		if !special[d.Users[i]] {
			users = append(users, d.Users[i])
		}
	}
	return users
}

// checks draws n checks, allowed and denied in turn.
func (p *picker) checks(n int) ([]Check, error) {
	out := make([]Check, 0, n)
	for i := range n {
		c, err := p.check(i%2 == 0)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *picker) check(allowed bool) (Check, error) {
	for range maxPickAttempts {
		if c, ok := p.checkFor(p.users[p.rng.IntN(len(p.users))], allowed); ok {
			return c, nil
		}
	}
	return Check{}, fmt.Errorf("workload: no check answered %t in %d attempts: the data set is too small", allowed, maxPickAttempts)
}

// checkFor draws a check about user whose answer is allowed, if it finds
// one: an allowed one among what the user sees, a denied one anywhere.
func (p *picker) checkFor(user string, allowed bool) (Check, bool) {
	var (
		company string
		perm    authz.Permission
		ok      = true
	)
	if allowed {
		company, perm, ok = p.granted(user)
	} else {
		company, perm = p.anywhere()
	}
	if !ok {
		return Check{}, false
	}
	want := p.truth.Allowed(user, perm, company)
	return Check{User: user, Permission: perm, Company: company, Want: want}, want == allowed
}

func (p *picker) anywhere() (string, authz.Permission) {
	return p.companies[p.rng.IntN(len(p.companies))], authz.Permissions[p.rng.IntN(len(authz.Permissions))]
}

// granted draws a company user sees and a permission their roles there
// grant.
func (p *picker) granted(user string) (string, authz.Permission, bool) {
	seen, ok := p.seen[user]
	if !ok {
		seen = p.truth.seen(user)
		p.seen[user] = seen
	}
	if len(seen) == 0 {
		return "", "", false
	}
	company := seen[p.rng.IntN(len(seen))]
	var perms []authz.Permission
	for _, q := range authz.Permissions {
		if p.truth.Allowed(user, q, company) {
			perms = append(perms, q)
		}
	}
	if len(perms) == 0 {
		return "", "", false
	}
	return company, perms[p.rng.IntN(len(perms))], true
}

// batch draws the checks of one bulk call, all about one user, allowed and
// denied in turn.
func (p *picker) batch(size int) ([]Check, error) {
	for range maxPickAttempts {
		user := p.users[p.rng.IntN(len(p.users))]
		if out, ok := p.batchFor(user, size); ok {
			return out, nil
		}
	}
	return nil, errors.New("workload: no user with both allowed and denied checks")
}

func (p *picker) batchFor(user string, size int) ([]Check, bool) {
	out := make([]Check, 0, size)
	for i := range size {
		c, ok := Check{}, false
		for range 100 {
			if c, ok = p.checkFor(user, i%2 == 0); ok {
				break
			}
		}
		if !ok {
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}

// users lists every user the workload asks about, each once.
func (w *workload) users() []string {
	seen := map[string]bool{}
	var out []string
	note := func(u string) {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, set := range [][]Check{w.warm, w.checks} {
		for _, c := range set {
			note(c.User)
		}
	}
	for _, b := range w.batches {
		note(b[0].User)
	}
	for _, l := range w.lists {
		note(l.User)
	}
	return out
}
