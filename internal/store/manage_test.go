package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// The issue behind these tests: "a grant never commits after the demotion of
// the granting user has committed: whatever the interleaving, the outcome is
// one the two requests could have had one after the other".

// raceRound is one grant-versus-demotion race: admin grants target the role
// editor in company while owner (or the application's own SQL) demotes
// admin in home, the company admin's role is held on (company itself or
// its parent).
type raceRound struct {
	company, home        string
	owner, admin, target string
}

// demotion is one way of taking admin's right to grant away.
type demotion struct {
	name string
	// run demotes r.admin in r.home and returns the consistency token of
	// the write and, when it knows it, the ID of its transaction (the
	// store's own transactions are found through their audit row).
	run func(ctx context.Context, r raceRound) (token, xid string, err error)
	// left is r.admin's row in r.home afterwards, as membershipRow says it.
	left string
}

func TestGrantRacesDemotionOfGranter(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	log := newCommitLog(t, dbURL)
	// The application writing Postgres itself, on a connection of its own.
	app := connect(t, dbURL)
	t.Cleanup(func() { app.Close(context.Background()) })

	demotions := []demotion{
		{name: "demoted to viewer", left: "viewer/active", run: func(ctx context.Context, r raceRound) (string, string, error) {
			_, token, err := s.SetMember(ctx, authz.Actor{ID: r.owner}, member(r.admin, r.home, authz.RoleViewer))
			return token, "", err
		}},
		{name: "deactivated", left: "admin/inactive", run: func(ctx context.Context, r raceRound) (string, string, error) {
			m := member(r.admin, r.home, authz.RoleAdmin)
			m.Status = authz.StatusInactive
			_, token, err := s.SetMember(ctx, authz.Actor{ID: r.owner}, m)
			return token, "", err
		}},
		{name: "removed", left: "", run: func(ctx context.Context, r raceRound) (string, string, error) {
			token, err := s.RemoveMember(ctx, authz.Actor{ID: r.owner}, r.home, r.admin)
			return token, "", err
		}},
		{name: "demoted by the application's SQL", left: "viewer/active", run: func(ctx context.Context, r raceRound) (string, string, error) {
			// Autocommit: the UPDATE is the whole transaction, and xmin
			// of the new row version is its ID.
			var xid, token string
			err := app.QueryRow(ctx, `update company_memberships set role = 'viewer', updated_at = now()
				where user_id = $1 and company_id = $2 returning xmin::text`, r.admin, r.home).Scan(&xid)
			if err != nil {
				return "", "", err
			}
			err = app.QueryRow(ctx, `select pg_current_wal_insert_lsn()::text`).Scan(&token)
			return token, xid, err
		}},
	}
	places := []struct {
		name      string
		inherited bool
	}{
		{"role held on the company", false},
		{"role inherited from the parent", true},
	}
	// 8 variants of 25 rounds: 200 races, each head start 3 times or more.
	const rounds = 25

	for _, place := range places {
		for _, dem := range demotions {
			t.Run(place.name+"/"+dem.name, func(t *testing.T) {
				ctx := t.Context()
				var grantFirst, demotionFirst, tokensMisordered int
				for i := range rounds {
					r := newRaceRound(t, s, fmt.Sprintf("%t-%s-%d-", place.inherited, dem.name, i), place.inherited)
					var (
						grantToken, demoteToken, demoteXID string
						grantErr, demoteErr                error
						wg                                 sync.WaitGroup
					)
					// A head start of up to 2 round trips for the demotion or
					// up to 5 for the grant: the demotion lands before the
					// grant, inside it (between its read of the admin's role
					// and its commit, where a missing lock would let a stale
					// grant through) or after it, so every order is tried.
					// The barrier, not the head start, makes them overlap.
					lead := i%8 - 2
					start := make(chan struct{})
					wg.Add(2)
					go func() {
						defer wg.Done()
						<-start
						if grantErr = pings(ctx, s, -lead); grantErr != nil {
							return
						}
						_, grantToken, grantErr = s.SetMember(ctx, authz.Actor{ID: r.admin}, member(r.target, r.company, authz.RoleEditor))
					}()
					go func() {
						defer wg.Done()
						<-start
						if demoteErr = pings(ctx, s, lead); demoteErr != nil {
							return
						}
						demoteToken, demoteXID, demoteErr = dem.run(ctx, r)
					}()
					close(start)
					wg.Wait()

					// Whatever the order, the owner may always demote the admin.
					if demoteErr != nil {
						t.Fatalf("round %d: demotion: %v", i, demoteErr)
					}
					if demoteXID == "" {
						demoteXID = auditXID(t, s, r.owner, r.admin)
					}
					commits := log.next(t)
					demoteCommit := commitOf(t, commits, demoteXID, "the demotion")
					checkToken(t, "demotion", demoteToken, demoteCommit)
					if got := membershipRow(t, s, r.admin, r.home); got != dem.left {
						t.Errorf("round %d: admin's row after the demotion = %q, want %q", i, got, dem.left)
					}

					switch {
					case grantErr == nil:
						// Serial order: grant, then demotion. Both commits
						// are in the slot, and the grant's must be first.
						grantFirst++
						grantCommit := commitOf(t, commits, auditXID(t, s, r.admin, r.target), "the grant")
						if grantCommit.pos > demoteCommit.pos {
							t.Errorf("round %d: both succeeded but the grant committed (at %s) after the demotion (at %s)",
								i, lsnText(grantCommit.end), lsnText(demoteCommit.end))
						}
						checkToken(t, "grant", grantToken, grantCommit)
						if parseLSN(t, grantToken) > parseLSN(t, demoteToken) {
							tokensMisordered++
						}
						if got := membershipRow(t, s, r.target, r.company); got != "editor/active" {
							t.Errorf("round %d: target's row after the grant = %q, want editor/active", i, got)
						}
					case errors.Is(grantErr, authz.ErrForbidden):
						// Serial order: demotion, then grant, which the
						// demoted admin may no longer make.
						demotionFirst++
						if got := membershipRow(t, s, r.target, r.company); got != "" {
							t.Errorf("round %d: the grant was refused but the target has the membership %q", i, got)
						}
					default:
						t.Fatalf("round %d: grant = %v, want success or ErrForbidden", i, grantErr)
					}
				}
				// Both orders should show up; how often each does depends
				// on the scheduler, so it is logged, not asserted.
				t.Logf("%d rounds: grant first %d, demotion first %d; tokens out of commit order in %d",
					rounds, grantFirst, demotionFirst, tokensMisordered)
			})
		}
	}
}

// pings makes n round trips to the server (none for n <= 0): a head start
// for the other side of a race measured in the server's time, not a sleep.
func pings(ctx context.Context, s *store.Store, n int) error {
	for range n {
		if err := s.Pool().Ping(ctx); err != nil {
			return err
		}
	}
	return nil
}

// newRaceRound makes the companies and members of one race, all IDs
// starting with prefix: the admin's role lives on the company or, when
// inherited, on its parent (a root, owned by the owner).
func newRaceRound(t *testing.T, s *store.Store, prefix string, inherited bool) raceRound {
	t.Helper()
	r := raceRound{company: prefix + "co", home: prefix + "co",
		owner: prefix + "owner", admin: prefix + "admin", target: prefix + "target"}
	if inherited {
		r.home = prefix + "parent"
		upsertAll(t, s, authz.Company{ID: r.home, Name: "Parent"})
		upsertAll(t, s, authz.Company{ID: r.company, Name: "Child", ParentID: r.home})
	} else {
		upsertAll(t, s, authz.Company{ID: r.company, Name: "Root"})
	}
	seedMembers(t, s, member(r.owner, r.home, authz.RoleOwner), member(r.admin, r.home, authz.RoleAdmin))
	return r
}

// Two owners of a root company each taking the other's ownership away at
// once: one of them goes first, and the second, no longer an owner, is
// refused, so the company never ends without an active owner.
func TestOwnersRemovingEachOther(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()

	changes := []struct {
		name string
		run  func(ctx context.Context, actor, company, target string) error
	}{
		{"demote", func(ctx context.Context, actor, company, target string) error {
			_, _, err := s.SetMember(ctx, authz.Actor{ID: actor}, member(target, company, authz.RoleAdmin))
			return err
		}},
		{"deactivate", func(ctx context.Context, actor, company, target string) error {
			m := member(target, company, authz.RoleOwner)
			m.Status = authz.StatusInactive
			_, _, err := s.SetMember(ctx, authz.Actor{ID: actor}, m)
			return err
		}},
		{"remove", func(ctx context.Context, actor, company, target string) error {
			_, err := s.RemoveMember(ctx, authz.Actor{ID: actor}, company, target)
			return err
		}},
	}
	const rounds = 90 // every pair of changes 10 times
	wins := map[string]int{}
	for i := range rounds {
		first, second := changes[i%3], changes[i/3%3]
		co := fmt.Sprintf("co-%d", i)
		upsertAll(t, s, authz.Company{ID: co, Name: "Co"})
		seedMembers(t, s, member("one", co, authz.RoleOwner), member("two", co, authz.RoleOwner))

		var errOne, errTwo error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; errOne = first.run(ctx, "one", co, "two") }()
		go func() { defer wg.Done(); <-start; errTwo = second.run(ctx, "two", co, "one") }()
		close(start)
		wg.Wait()

		winner := ""
		switch {
		case errOne == nil && errors.Is(errTwo, authz.ErrForbidden):
			winner = "one"
		case errTwo == nil && errors.Is(errOne, authz.ErrForbidden):
			winner = "two"
		default:
			t.Fatalf("round %d (%s vs %s): one = %v, two = %v; want exactly one to succeed and the other ErrForbidden",
				i, first.name, second.name, errOne, errTwo)
		}
		wins[winner]++
		owners := queryStringsPool(t, s, `select user_id from company_memberships
			where company_id = $1 and role = 'owner' and status = 'active'`, co)
		if !slices.Equal(owners, []string{winner}) {
			t.Errorf("round %d (%s vs %s): active owners %q, want just %q", i, first.name, second.name, owners, winner)
		}
	}
	t.Logf("%d rounds: owner one won %d, owner two won %d", rounds, wins["one"], wins["two"])
}

func TestLastOwner(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)

	setMember := func(actor, target string, role authz.Role, status authz.Status) func(context.Context, string) error {
		return func(ctx context.Context, co string) error {
			_, _, err := s.SetMember(ctx, authz.Actor{ID: actor}, authz.Membership{UserID: target, CompanyID: co, Role: role, Status: status})
			return err
		}
	}
	remove := func(actor, target string) func(context.Context, string) error {
		return func(ctx context.Context, co string) error {
			_, err := s.RemoveMember(ctx, authz.Actor{ID: actor}, co, target)
			return err
		}
	}
	inactiveOwner := authz.Membership{UserID: "owner2", Role: authz.RoleOwner, Status: authz.StatusInactive}
	tests := []struct {
		name string
		// child puts the company under a root that "boss" owns.
		child   bool
		members []authz.Membership // CompanyID is filled in
		call    func(ctx context.Context, co string) error
		want    error
		// target and after: target's row once the call succeeded.
		target, after string
	}{
		{name: "only owner leaves a root", members: owners("owner"),
			call: remove("owner", "owner"), want: authz.ErrConflict},
		{name: "only active owner leaves a root beside an inactive owner", members: append(owners("owner"), inactiveOwner),
			call: remove("owner", "owner"), want: authz.ErrConflict},
		// Demoting or deactivating the only owner of a root can only be
		// asked by that owner: nobody else holds manage_owners on a root.
		// Changing one's own membership is refused before the last-owner
		// rule is looked at.
		{name: "only owner demotes themselves", members: owners("owner"),
			call: setMember("owner", "owner", authz.RoleAdmin, authz.StatusActive), want: authz.ErrForbidden},
		{name: "only owner deactivates themselves", members: owners("owner"),
			call: setMember("owner", "owner", authz.RoleOwner, authz.StatusInactive), want: authz.ErrForbidden},
		{name: "admin removes the only owner of a root", members: append(owners("owner"), authz.Membership{UserID: "adm", Role: authz.RoleAdmin, Status: authz.StatusActive}),
			call: remove("adm", "owner"), want: authz.ErrForbidden},
		{name: "one of two owners leaves a root", members: owners("owner", "owner2"),
			call: remove("owner", "owner"), target: "owner", after: ""},
		{name: "owner demotes the other owner of a root", members: owners("owner", "owner2"),
			call: setMember("owner", "owner2", authz.RoleAdmin, authz.StatusActive), target: "owner2", after: "admin/active"},
		{name: "owner deactivates the other owner of a root", members: owners("owner", "owner2"),
			call: setMember("owner", "owner2", authz.RoleOwner, authz.StatusInactive), target: "owner2", after: "owner/inactive"},
		{name: "owner removes the other owner of a root", members: owners("owner", "owner2"),
			call: remove("owner", "owner2"), target: "owner2", after: ""},
		{name: "only owner leaves a child", child: true, members: owners("owner"),
			call: remove("owner", "owner"), target: "owner", after: ""},
		{name: "parent's owner removes a child's only owner", child: true, members: owners("owner"),
			call: remove("boss", "owner"), target: "owner", after: ""},
		{name: "parent's owner demotes a child's only owner", child: true, members: owners("owner"),
			call: setMember("boss", "owner", authz.RoleViewer, authz.StatusActive), target: "owner", after: "viewer/active"},
		{name: "parent's owner deactivates a child's only owner", child: true, members: owners("owner"),
			call: setMember("boss", "owner", authz.RoleOwner, authz.StatusInactive), target: "owner", after: "owner/inactive"},
		{name: "editor leaves a root", members: append(owners("owner"), authz.Membership{UserID: "ed", Role: authz.RoleEditor, Status: authz.StatusActive}),
			call: remove("ed", "ed"), target: "ed", after: ""},
		{name: "leaving without a membership", members: owners("owner"),
			call: remove("nobody", "nobody"), want: authz.ErrNotFound},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			co := fmt.Sprintf("co-%d", i)
			if tt.child {
				top := co + "-top"
				upsertAll(t, s, authz.Company{ID: top, Name: "Top"}, authz.Company{ID: co, Name: "Co", ParentID: top})
				seedMembers(t, s, member("boss", top, authz.RoleOwner))
			} else {
				upsertAll(t, s, authz.Company{ID: co, Name: "Co"})
			}
			for _, m := range tt.members {
				m.CompanyID = co
				seedMembers(t, s, m)
			}
			before := snapshot(t, s)
			err := tt.call(t.Context(), co)
			if !errors.Is(err, tt.want) || (err != nil) != (tt.want != nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err != nil {
				if after := snapshot(t, s); after != before {
					t.Errorf("a refused change changed rows:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if got := membershipRow(t, s, tt.target, co); got != tt.after {
				t.Errorf("%s's row = %q, want %q", tt.target, got, tt.after)
			}
		})
	}
}

// Leaving a root company beside one other owner, while the application's
// own SQL demotes that owner in a transaction not yet committed: the count
// of other owners must wait for that transaction and then see the demotion
// (ErrConflict), not count the owner as it was and let the company end
// without one.
func TestLastOwnerCountWaitsForTheApplication(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()
	upsertAll(t, s, authz.Company{ID: "co", Name: "Co"})
	seedMembers(t, s, member("leaver", "co", authz.RoleOwner), member("other", "co", authz.RoleOwner))

	app := connect(t, dbURL)
	t.Cleanup(func() { app.Close(context.Background()) })
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `update company_memberships set role = 'admin' where user_id = 'other' and company_id = 'co'`); err != nil {
		t.Fatal(err)
	}
	leave := make(chan error, 1)
	go func() {
		_, err := s.RemoveMember(ctx, authz.Actor{ID: "leaver"}, "co", "leaver")
		leave <- err
	}()
	waitFor(t, "the leave to wait for the application's transaction", func() bool {
		select {
		case err := <-leave:
			t.Fatalf("leaving returned %v while the demotion of the other owner was uncommitted; it must wait", err)
		default:
		}
		var waiting int
		if err := s.Pool().QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting > 0
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-leave; !errors.Is(err, authz.ErrConflict) {
		t.Errorf("leaving after the other owner's demotion = %v, want ErrConflict", err)
	}
	if got := membershipRow(t, s, "leaver", "co"); got != "owner/active" {
		t.Errorf("leaver's row = %q, want owner/active", got)
	}
}

func TestCreateCompany(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	upsertAll(t, s,
		authz.Company{ID: "holding", Name: "Holding"},
		authz.Company{ID: "sub", Name: "Sub", ParentID: "holding"},
		authz.Company{ID: "foreign", Name: "Foreign"})
	seedMembers(t, s,
		member("boss", "holding", authz.RoleOwner),
		member("adm", "holding", authz.RoleAdmin),
		member("ed", "holding", authz.RoleEditor),
		member("stranger", "foreign", authz.RoleOwner))

	tests := []struct {
		name    string
		actor   string
		company authz.Company
		want    error
	}{
		{"root by anyone", "newcomer", authz.Company{ID: "fresh", Name: "Fresh"}, nil},
		{"root with a generated id", "newcomer", authz.Company{Name: "Generated"}, nil},
		{"odd id", "newcomer", authz.Company{ID: "a.b@c d/ü", Name: "Odd"}, nil},
		{"child by the parent's owner", "boss", authz.Company{ID: "kid-boss", Name: "Kid", ParentID: "holding"}, nil},
		{"child by the parent's admin", "adm", authz.Company{ID: "kid-adm", Name: "Kid", ParentID: "holding"}, nil},
		{"child by an admin inherited from the grandparent", "adm", authz.Company{ID: "grandkid", Name: "Kid", ParentID: "sub"}, nil},
		{"child by the parent's editor", "ed", authz.Company{ID: "kid-ed", Name: "Kid", ParentID: "holding"}, authz.ErrForbidden},
		{"child under an unknown parent", "boss", authz.Company{ID: "kid-orphan", Name: "Kid", ParentID: "nope"}, authz.ErrForbidden},
		{"child under another tenant's company", "boss", authz.Company{ID: "kid-foreign", Name: "Kid", ParentID: "foreign"}, authz.ErrForbidden},
		{"existing id of one's own", "boss", authz.Company{ID: "holding", Name: "Again"}, authz.ErrConflict},
		{"existing id of another tenant", "boss", authz.Company{ID: "foreign", Name: "Mine"}, authz.ErrConflict},
		{"existing id as a child", "boss", authz.Company{ID: "sub", Name: "Sub", ParentID: "holding"}, authz.ErrConflict},
		{"empty name", "newcomer", authz.Company{ID: "nameless"}, authz.ErrInvalid},
		{"wildcard actor", "*", authz.Company{ID: "everyones", Name: "Everyone's"}, authz.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			before := snapshot(t, s)
			got, token, err := s.CreateCompany(ctx, authz.Actor{ID: tt.actor}, tt.company)
			if !errors.Is(err, tt.want) || (err != nil) != (tt.want != nil) {
				t.Fatalf("CreateCompany(%q, %+v) = %v, want %v", tt.actor, tt.company, err, tt.want)
			}
			if err != nil {
				if after := snapshot(t, s); after != before {
					t.Errorf("a refused create changed rows:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if token == "" {
				t.Error("no consistency token")
			}
			want := tt.company
			if want.ID == "" {
				if got.ID == "" {
					t.Fatal("no id generated")
				}
				want.ID = got.ID
			}
			if got != want {
				t.Errorf("CreateCompany returned %+v, want %+v", got, want)
			}
			if stored, err := s.CompaniesByIDs(ctx, []string{want.ID}); err != nil || !slices.Equal(stored, []authz.Company{want}) {
				t.Errorf("stored %+v (%v), want %+v", stored, err, want)
			}
			if row := membershipRow(t, s, tt.actor, want.ID); row != "owner/active" {
				t.Errorf("creator's membership = %q, want owner/active", row)
			}
		})
	}
}

func TestUpdateCompany(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)

	// A chain of store.MaxDepth companies, deep-1 the root, owned by boss.
	deep := func(n int) string { return fmt.Sprintf("deep-%d", n) }
	for n := 1; n <= store.MaxDepth; n++ {
		c := authz.Company{ID: deep(n), Name: "Deep"}
		if n > 1 {
			c.ParentID = deep(n - 1)
		}
		upsertAll(t, s, c)
	}
	seedMembers(t, s, member("boss", deep(1), authz.RoleOwner))

	// Each case gets a tree of its own, its IDs prefixed:
	//
	//	root (boss owner, adm admin, ed editor, vw viewer)
	//	└── kid (kidowner owner, unless noKidOwner; lapsed inactive owner)
	//	    └── grandkid
	//	other (boss owner, kidowner as otherRole)
	type tree struct{ root, kid, grandkid, other string }
	newTree := func(t *testing.T, prefix string, kidOwner bool, otherRole authz.Role) tree {
		t.Helper()
		tr := tree{prefix + "root", prefix + "kid", prefix + "grandkid", prefix + "other"}
		upsertAll(t, s,
			authz.Company{ID: tr.root, Name: "Root"},
			authz.Company{ID: tr.kid, Name: "Kid", ParentID: tr.root},
			authz.Company{ID: tr.grandkid, Name: "Grandkid", ParentID: tr.kid},
			authz.Company{ID: tr.other, Name: "Other"})
		seedMembers(t, s,
			member("boss", tr.root, authz.RoleOwner), member("adm", tr.root, authz.RoleAdmin),
			member("ed", tr.root, authz.RoleEditor), member("vw", tr.root, authz.RoleViewer),
			member("boss", tr.other, authz.RoleOwner),
			authz.Membership{UserID: "lapsed", CompanyID: tr.kid, Role: authz.RoleOwner, Status: authz.StatusInactive})
		if kidOwner {
			seedMembers(t, s, member("kidowner", tr.kid, authz.RoleOwner))
		}
		if otherRole != "" {
			seedMembers(t, s, member("kidowner", tr.other, otherRole))
		}
		return tr
	}
	tests := []struct {
		name      string
		kidOwner  bool
		otherRole authz.Role
		actor     string
		// company and update pick from the case's tree.
		company func(tree) string
		update  func(tree) authz.CompanyUpdate
		want    error
		// parent is the company's parent after a successful update.
		parent func(tree) string
	}{
		{name: "rename by an editor", actor: "ed",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{Name: ptr("Renamed")} },
			parent:  func(tr tree) string { return tr.root }},
		{name: "rename by a viewer", actor: "vw",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{Name: ptr("Renamed")} },
			want:    authz.ErrForbidden},
		{name: "rename by a stranger", actor: "stranger",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{Name: ptr("Renamed")} },
			want:    authz.ErrForbidden},
		{name: "rename of an unknown company", actor: "boss",
			company: func(tr tree) string { return tr.root + "-nope" },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{Name: ptr("Renamed")} },
			want:    authz.ErrForbidden},
		{name: "rename to an empty name", actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{Name: ptr("")} },
			want:    authz.ErrInvalid},
		{name: "move by the owner of both", actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.other} },
			parent:  func(tr tree) string { return tr.other }},
		{name: "move and rename together", actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update: func(tr tree) authz.CompanyUpdate {
				return authz.CompanyUpdate{Name: ptr("Moved"), ParentID: &tr.other}
			},
			parent: func(tr tree) string { return tr.other }},
		{name: "move by an admin", actor: "adm",
			company: func(tr tree) string { return tr.kid },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.other} },
			want:    authz.ErrForbidden},
		{name: "move by an owner who is editor on the new parent", kidOwner: true, otherRole: authz.RoleEditor, actor: "kidowner",
			company: func(tr tree) string { return tr.kid },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.other} },
			want:    authz.ErrForbidden},
		// The kid's own owner holds nothing on root, whose owners would
		// lose every inherited right on kid: the move is theirs.
		{name: "move away by the company's own owner, owner of the new parent", kidOwner: true, otherRole: authz.RoleOwner, actor: "kidowner",
			company: func(tr tree) string { return tr.kid },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.other} },
			want:    authz.ErrForbidden},
		{name: "detach by the company's own owner", kidOwner: true, actor: "kidowner",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: ptr("")} },
			want:    authz.ErrForbidden},
		{name: "move within the tree by the owner above", actor: "boss",
			company: func(tr tree) string { return tr.grandkid },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.root} },
			parent:  func(tr tree) string { return tr.root }},
		{name: "move in: a root by the owner of both trees", actor: "boss",
			company: func(tr tree) string { return tr.other },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.kid} },
			parent:  func(tr tree) string { return tr.kid }},
		{name: "move in: a root by its admin", otherRole: authz.RoleAdmin, actor: "kidowner",
			company: func(tr tree) string { return tr.other },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.root} },
			want:    authz.ErrForbidden},
		{name: "move under an unknown parent", actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update: func(tr tree) authz.CompanyUpdate {
				p := tr.other + "-nope"
				return authz.CompanyUpdate{ParentID: &p}
			},
			want: authz.ErrForbidden},
		{name: "move under itself", actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.kid} },
			want:    authz.ErrConflict},
		{name: "move under its own grandchild", actor: "boss",
			company: func(tr tree) string { return tr.root },
			update:  func(tr tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: &tr.grandkid} },
			want:    authz.ErrConflict},
		{name: "move to exactly the depth bound", actor: "boss",
			// root, kid and grandkid under deep-(MaxDepth-3): MaxDepth levels.
			company: func(tr tree) string { return tr.root },
			update: func(tree) authz.CompanyUpdate {
				p := deep(store.MaxDepth - 3)
				return authz.CompanyUpdate{ParentID: &p}
			},
			parent: func(tree) string { return deep(store.MaxDepth - 3) }},
		{name: "move past the depth bound", actor: "boss",
			company: func(tr tree) string { return tr.root },
			update: func(tree) authz.CompanyUpdate {
				p := deep(store.MaxDepth - 2)
				return authz.CompanyUpdate{ParentID: &p}
			},
			want: authz.ErrConflict},
		{name: "move to the root with an active owner of its own", kidOwner: true, actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: ptr("")} },
			parent:  func(tree) string { return "" }},
		{name: "move to the root with only an inactive owner of its own", actor: "boss",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: ptr("")} },
			want:    authz.ErrConflict},
		{name: "move to the root by an admin", kidOwner: true, actor: "adm",
			company: func(tr tree) string { return tr.kid },
			update:  func(tree) authz.CompanyUpdate { return authz.CompanyUpdate{ParentID: ptr("")} },
			want:    authz.ErrForbidden},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			tr := newTree(t, fmt.Sprintf("t%d-", i), tt.kidOwner, tt.otherRole)
			id, u := tt.company(tr), tt.update(tr)
			before := snapshot(t, s)
			got, token, err := s.UpdateCompany(ctx, authz.Actor{ID: tt.actor}, id, u)
			if !errors.Is(err, tt.want) || (err != nil) != (tt.want != nil) {
				t.Fatalf("UpdateCompany(%q, %q) = %v, want %v", tt.actor, id, err, tt.want)
			}
			if err != nil {
				if after := snapshot(t, s); after != before {
					t.Errorf("a refused update changed rows:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if token == "" {
				t.Error("no consistency token")
			}
			stored, err := s.CompaniesByIDs(ctx, []string{id})
			if err != nil || len(stored) != 1 {
				t.Fatalf("CompaniesByIDs(%q) = %+v, %v", id, stored, err)
			}
			if got != stored[0] {
				t.Errorf("UpdateCompany returned %+v, stored is %+v", got, stored[0])
			}
			if u.Name != nil && stored[0].Name != *u.Name {
				t.Errorf("name = %q, want %q", stored[0].Name, *u.Name)
			}
			if want := tt.parent(tr); stored[0].ParentID != want {
				t.Errorf("parent = %q, want %q", stored[0].ParentID, want)
			}
		})
	}
}

// auditRow is the columns of one tenantgate.audit_log row a test compares.
type auditRow struct {
	actor, action, company, target, outcome string
}

func TestAuditTrail(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	upsertAll(t, s, authz.Company{ID: "co", Name: "Co"}, authz.Company{ID: "foreign", Name: "Foreign"})
	seedMembers(t, s, member("boss", "co", authz.RoleOwner), member("ed", "co", authz.RoleEditor),
		member("stranger", "foreign", authz.RoleOwner))

	set := func(actor, user string, role authz.Role) func(context.Context) error {
		return func(ctx context.Context) error {
			_, _, err := s.SetMember(ctx, authz.Actor{ID: actor}, member(user, "co", role))
			return err
		}
	}
	tests := []struct {
		name string
		call func(context.Context) error
		want auditRow
	}{
		{"grant", set("boss", "new", authz.RoleViewer),
			auditRow{"boss", authz.ActionMemberSet, "co", "new", "allowed"}},
		{"grant without the right", set("ed", "other", authz.RoleViewer),
			auditRow{"ed", authz.ActionMemberSet, "co", "other", "forbidden"}},
		{"grant to the wildcard", set("boss", "*", authz.RoleViewer),
			auditRow{"boss", authz.ActionMemberSet, "co", "*", "invalid"}},
		{"grant of an unknown role", set("boss", "new", "superuser"),
			auditRow{"boss", authz.ActionMemberSet, "co", "new", "invalid"}},
		{"remove a non-member", func(ctx context.Context) error {
			_, err := s.RemoveMember(ctx, authz.Actor{ID: "boss"}, "co", "nobody")
			return err
		},
			auditRow{"boss", authz.ActionMemberRemove, "co", "nobody", "not_found"}},
		{"last owner leaves", func(ctx context.Context) error {
			_, err := s.RemoveMember(ctx, authz.Actor{ID: "boss"}, "co", "boss")
			return err
		},
			auditRow{"boss", authz.ActionMemberRemove, "co", "boss", "conflict"}},
		{"remove a member", func(ctx context.Context) error {
			_, err := s.RemoveMember(ctx, authz.Actor{ID: "boss"}, "co", "new")
			return err
		},
			auditRow{"boss", authz.ActionMemberRemove, "co", "new", "allowed"}},
		{"create a child", func(ctx context.Context) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: "boss"}, authz.Company{ID: "kid", Name: "Kid", ParentID: "co"})
			return err
		}, auditRow{"boss", authz.ActionCompanyCreate, "kid", "", "allowed"}},
		// A refused child is filed under the parent, whose managers can
		// read it, whatever ID was asked for.
		{"create a child without the right", func(ctx context.Context) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: "ed"}, authz.Company{ID: "kid2", Name: "Kid", ParentID: "co"})
			return err
		}, auditRow{"ed", authz.ActionCompanyCreate, "co", "", "forbidden"}},
		{"create an existing child", func(ctx context.Context) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: "boss"}, authz.Company{ID: "kid", Name: "Kid", ParentID: "co"})
			return err
		}, auditRow{"boss", authz.ActionCompanyCreate, "co", "", "conflict"}},
		{"create a root with a taken id", func(ctx context.Context) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: "boss"}, authz.Company{ID: "co", Name: "Again"})
			return err
		}, auditRow{"boss", authz.ActionCompanyCreate, "co", "", "conflict"}},
		{"rename", func(ctx context.Context) error {
			_, _, err := s.UpdateCompany(ctx, authz.Actor{ID: "ed"}, "co", authz.CompanyUpdate{Name: ptr("Renamed")})
			return err
		}, auditRow{"ed", authz.ActionCompanyUpdate, "co", "", "allowed"}},
		{"move without the right", func(ctx context.Context) error {
			_, _, err := s.UpdateCompany(ctx, authz.Actor{ID: "ed"}, "co", authz.CompanyUpdate{ParentID: ptr("kid")})
			return err
		}, auditRow{"ed", authz.ActionCompanyUpdate, "co", "", "forbidden"}},
		{"move under its child", func(ctx context.Context) error {
			_, _, err := s.UpdateCompany(ctx, authz.Actor{ID: "boss"}, "co", authz.CompanyUpdate{ParentID: ptr("kid")})
			return err
		}, auditRow{"boss", authz.ActionCompanyUpdate, "co", "", "conflict"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := auditCount(t, s)
			err := tt.call(t.Context())
			if (err == nil) != (tt.want.outcome == "allowed") {
				t.Fatalf("call = %v, want outcome %s", err, tt.want.outcome)
			}
			if n := auditCount(t, s) - before; n != 1 {
				t.Fatalf("%d audit rows written, want 1", n)
			}
			var got auditRow
			var reason string
			err = s.Pool().QueryRow(t.Context(), `select actor, action, company_id, target, outcome, reason
				from tenantgate.audit_log order by id desc limit 1`).
				Scan(&got.actor, &got.action, &got.company, &got.target, &got.outcome, &reason)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("audit row %+v, want %+v", got, tt.want)
			}
			if reason == "" {
				t.Error("audit row without a reason")
			}
		})
	}

	t.Run("read", func(t *testing.T) {
		ctx := t.Context()
		all, err := s.Audit(ctx, authz.Actor{ID: "boss"}, "co", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := queryStringsPool(t, s, `select a.id::text from tenantgate.audit_log a where company_id = 'co' order by a.id desc`)
		if got := auditIDs(all); len(got) == 0 || !slices.Equal(got, want) {
			t.Fatalf("Audit ids = %q, want %q (not empty)", got, want)
		}
		if all[0].Actor != "boss" || all[0].Outcome != "conflict" || all[0].Detail["parent_id"] != "kid" || all[0].At.IsZero() {
			t.Errorf("newest entry %+v, want boss's refused move under kid", all[0])
		}

		// Pages of 3, each before the last of the one before.
		var paged []authz.AuditEntry
		for before := int64(0); ; {
			page, err := s.Audit(ctx, authz.Actor{ID: "boss"}, "co", 3, before)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
			if len(page) < 3 {
				break
			}
			before = page[len(page)-1].ID
		}
		if got := auditIDs(paged); !slices.Equal(got, want) {
			t.Errorf("paged ids = %q, want %q", got, want)
		}

		// A cursor past every ID (the gateway passes any int64) is the
		// first page.
		if far, err := s.Audit(ctx, authz.Actor{ID: "boss"}, "co", 100, math.MaxInt64); err != nil || !slices.Equal(auditIDs(far), want) {
			t.Errorf("Audit before MaxInt64 = %q, %v; want %q", auditIDs(far), err, want)
		}
	})

	t.Run("needs manage_members", func(t *testing.T) {
		for _, c := range []struct{ actor, company string }{
			{"ed", "co"}, {"stranger", "co"}, {"boss", "foreign"}, {"boss", "nope"},
		} {
			if _, err := s.Audit(t.Context(), authz.Actor{ID: c.actor}, c.company, 10, 0); !errors.Is(err, authz.ErrForbidden) {
				t.Errorf("Audit(%q, %q) = %v, want ErrForbidden", c.actor, c.company, err)
			}
		}
	})
}

func TestMembersAndAccesses(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	upsertAll(t, s,
		authz.Company{ID: "top", Name: "Top"},
		authz.Company{ID: "mid", Name: "Mid", ParentID: "top"},
		authz.Company{ID: "leaf", Name: "Leaf", ParentID: "mid"},
		authz.Company{ID: "foreign", Name: "Foreign"})
	gone := authz.Membership{UserID: "gone", CompanyID: "mid", Role: authz.RoleAdmin, Status: authz.StatusInactive}
	seedMembers(t, s,
		member("boss", "top", authz.RoleOwner), member("reader", "top", authz.RoleViewer),
		member("adm", "mid", authz.RoleAdmin), member("ed", "mid", authz.RoleEditor), gone,
		member("leafy", "leaf", authz.RoleViewer),
		member("stranger", "foreign", authz.RoleOwner))

	t.Run("members", func(t *testing.T) {
		got, err := s.Members(t.Context(), authz.Actor{ID: "adm"}, "mid")
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i].ID == "" {
				t.Errorf("member %+v without an id", got[i])
			}
			got[i].ID = ""
		}
		want := []authz.Membership{member("adm", "mid", authz.RoleAdmin), member("ed", "mid", authz.RoleEditor), gone}
		if !slices.Equal(got, want) {
			t.Errorf("Members(adm, mid) = %+v, want %+v", got, want)
		}
		// The owner of the top reaches the leaf through inheritance.
		if got, err := s.Members(t.Context(), authz.Actor{ID: "boss"}, "leaf"); err != nil || len(got) != 1 || got[0].UserID != "leafy" {
			t.Errorf("Members(boss, leaf) = %+v, %v; want leafy", got, err)
		}
	})

	t.Run("accesses", func(t *testing.T) {
		got, err := s.Accesses(t.Context(), authz.Actor{ID: "adm"}, "leaf")
		if err != nil {
			t.Fatal(err)
		}
		want := []authz.Access{
			{UserID: "adm", Role: authz.RoleAdmin, CompanyID: "mid", Depth: 1},
			{UserID: "boss", Role: authz.RoleOwner, CompanyID: "top", Depth: 2},
			{UserID: "ed", Role: authz.RoleEditor, CompanyID: "mid", Depth: 1},
			{UserID: "leafy", Role: authz.RoleViewer, CompanyID: "leaf", Depth: 0},
			{UserID: "reader", Role: authz.RoleViewer, CompanyID: "top", Depth: 2},
		}
		if !slices.Equal(got, want) {
			t.Errorf("Accesses(adm, leaf) =\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("need manage_members", func(t *testing.T) {
		for _, c := range []struct{ actor, company string }{
			{"ed", "mid"}, {"reader", "leaf"}, {"leafy", "leaf"}, {"gone", "mid"},
			{"stranger", "mid"}, {"adm", "top"}, {"boss", "foreign"}, {"boss", "nope"},
		} {
			if _, err := s.Members(t.Context(), authz.Actor{ID: c.actor}, c.company); !errors.Is(err, authz.ErrForbidden) {
				t.Errorf("Members(%q, %q) = %v, want ErrForbidden", c.actor, c.company, err)
			}
			if _, err := s.Accesses(t.Context(), authz.Actor{ID: c.actor}, c.company); !errors.Is(err, authz.ErrForbidden) {
				t.Errorf("Accesses(%q, %q) = %v, want ErrForbidden", c.actor, c.company, err)
			}
		}
	})
}

// commitLog reads the order in which transactions that wrote companies or
// memberships committed, from a temporary logical replication slot: logical
// decoding hands transactions out in commit order, with each commit's WAL
// position. The consistency tokens cannot tell that order: each is read
// after its commit returned, on a round trip of its own, and by then a
// transaction that committed later may have been written too.
type commitLog struct {
	conn *pgx.Conn
	slot string
}

// commit is one transaction in a commitLog: pos is its place in commit
// order, end the WAL position just past its commit record.
type commit struct {
	pos int
	end uint64
}

func newCommitLog(t *testing.T, dbURL string) *commitLog {
	t.Helper()
	l := &commitLog{conn: connect(t, dbURL), slot: fmt.Sprintf("manage_test_%x", rand.Uint64())}
	// A temporary slot belongs to this connection, so a crashed test
	// leaves no slot pinning WAL behind. This session's commits wait for
	// the WAL flush: see next.
	if _, err := l.conn.Exec(t.Context(), `set synchronous_commit = on`); err != nil {
		l.conn.Close(context.Background())
		t.Fatal(err)
	}
	if _, err := l.conn.Exec(t.Context(), `select pg_create_logical_replication_slot($1, 'pgoutput', true)`, l.slot); err != nil {
		l.conn.Close(context.Background())
		t.Fatalf("create slot: %v", err)
	}
	t.Cleanup(func() {
		// Dropped explicitly: the database cannot be dropped while the
		// slot exists, and the server removes a temporary one only once
		// the session has gone, after Close returned.
		ctx := context.Background()
		if _, err := l.conn.Exec(ctx, `select pg_drop_replication_slot($1)`, l.slot); err != nil {
			t.Errorf("drop slot: %v", err)
		}
		l.conn.Close(ctx)
	})
	return l
}

// next consumes the slot and returns the transactions committed since the
// last call, by transaction ID.
func (l *commitLog) next(t *testing.T) map[string]commit {
	t.Helper()
	// Decoding stops at the end of the flushed WAL, and the test server
	// runs with synchronous_commit off, so the commits of interest may not
	// be flushed yet. A commit of this session's, which waits for the flush
	// of all WAL before it, is written after theirs returned and flushes
	// them. (It writes no table rows, so it adds nothing to the slot.)
	if _, err := l.conn.Exec(t.Context(), `select pg_logical_emit_message(true, 'manage_test', 'flush')`); err != nil {
		t.Fatalf("flush wal: %v", err)
	}
	rows, err := l.conn.Query(t.Context(), `select xid::text, data from pg_logical_slot_get_binary_changes($1, null, null,
		'proto_version', '1', 'publication_names', 'tenantgate')`, l.slot)
	if err != nil {
		t.Fatalf("read slot: %v", err)
	}
	commits := map[string]commit{}
	for rows.Next() {
		var xid string
		var data []byte
		if err := rows.Scan(&xid, &data); err != nil {
			t.Fatalf("read slot: %v", err)
		}
		// pgoutput's Commit message: 'C', flags (1 byte), then the commit
		// record's LSN and its end LSN (8 bytes each), then a timestamp.
		if len(data) >= 18 && data[0] == 'C' {
			commits[xid] = commit{pos: len(commits), end: binary.BigEndian.Uint64(data[10:18])}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read slot: %v", err)
	}
	return commits
}

// commitOf is transaction xid's commit among commits, failing t without it.
func commitOf(t *testing.T, commits map[string]commit, xid, what string) commit {
	t.Helper()
	c, ok := commits[xid]
	if !ok {
		t.Fatalf("%s (transaction %s) is not among the commits the slot saw", what, xid)
	}
	return c
}

// checkToken fails t unless token, a write's consistency token, is at or
// past the end of the write's commit: a reader waiting for the token must
// see the write.
func checkToken(t *testing.T, what, token string, c commit) {
	t.Helper()
	if parseLSN(t, token) < c.end {
		t.Errorf("%s: consistency token %s is before the end of its commit %s", what, token, lsnText(c.end))
	}
}

// parseLSN reads the LSN of a consistency token: a write's, which names
// the timeline too, or a bare one the application's SQL read.
func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	pos, err := authz.ParsePosition(s)
	if err != nil {
		t.Fatalf("consistency token: %v", err)
	}
	return uint64(pos.LSN)
}

func lsnText(lsn uint64) string { return authz.LSN(lsn).String() }

// auditXID is the transaction ID of actor's allowed change to target, read
// from the audit row it wrote in that transaction.
func auditXID(t *testing.T, s *store.Store, actor, target string) string {
	t.Helper()
	xids := queryStringsPool(t, s, `select xmin::text from tenantgate.audit_log
		where actor = $1 and target = $2 and outcome = 'allowed'`, actor, target)
	if len(xids) != 1 {
		t.Fatalf("allowed audit rows of %s on %s: %q, want one", actor, target, xids)
	}
	return xids[0]
}

// member is an active membership.
func member(user, company string, role authz.Role) authz.Membership {
	return authz.Membership{UserID: user, CompanyID: company, Role: role, Status: authz.StatusActive}
}

// owners are active owner memberships of users, company left to fill in.
func owners(users ...string) []authz.Membership {
	ms := make([]authz.Membership, len(users))
	for i, u := range users {
		ms[i] = authz.Membership{UserID: u, Role: authz.RoleOwner, Status: authz.StatusActive}
	}
	return ms
}

func ptr(s string) *string { return &s }

func seedMembers(t *testing.T, s *store.Store, ms ...authz.Membership) {
	t.Helper()
	for _, m := range ms {
		if err := s.UpsertMembership(t.Context(), m); err != nil {
			t.Fatalf("UpsertMembership(%+v): %v", m, err)
		}
	}
}

// membershipRow is user's membership in company as "role/status", "" when
// there is none.
func membershipRow(t *testing.T, s *store.Store, user, company string) string {
	t.Helper()
	rows := queryStringsPool(t, s, `select role || '/' || status from company_memberships
		where user_id = $1 and company_id = $2`, user, company)
	if len(rows) == 0 {
		return ""
	}
	return rows[0]
}

// snapshot is every company and membership, for comparing before and after
// a refused change.
func snapshot(t *testing.T, s *store.Store) string {
	t.Helper()
	var snap string
	err := s.Pool().QueryRow(t.Context(), `select
		(select coalesce(string_agg(format('%s<%s:%s', id, parent_id, name), ' ' order by id), '') from companies)
		|| ' | ' ||
		(select coalesce(string_agg(format('%s@%s=%s/%s', user_id, company_id, role, status), ' ' order by user_id, company_id), '')
		 from company_memberships)`).Scan(&snap)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func auditCount(t *testing.T, s *store.Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(t.Context(), `select count(*) from tenantgate.audit_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func auditIDs(entries []authz.AuditEntry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = fmt.Sprint(e.ID)
	}
	return ids
}

// queryStringsPool is queryStrings on the store's pool, with arguments:
// the race tests run it every round, where a connection each would cost more
// than the round.
func queryStringsPool(t *testing.T, s *store.Store, sql string, args ...any) []string {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

// TestOutsidersTakeNoLocksAndWriteNoAudit: a caller without a role on a
// company is refused on an unlocked read, so it cannot queue the company's
// own writes behind its requests, and its refusals are counted, not written
// into the company's audit trail.
func TestOutsidersTakeNoLocksAndWriteNoAudit(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	upsertAll(t, s, authz.Company{ID: "victim", Name: "Victim"}, authz.Company{ID: "victim-kid", Name: "Kid", ParentID: "victim"})
	seedMembers(t, s, member("boss", "victim", authz.RoleOwner), member("staff", "victim", authz.RoleAdmin),
		authz.Membership{UserID: "former", CompanyID: "victim", Role: authz.RoleOwner, Status: authz.StatusInactive})

	// The company's own writer holds the row locks a management request
	// would wait for.
	ctx := t.Context()
	held, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background()) //nolint:errcheck // test cleanup
	if _, err := held.Exec(ctx, `select 1 from companies where id in ('victim', 'victim-kid') for update`); err != nil {
		t.Fatal(err)
	}
	if _, err := held.Exec(ctx, `select 1 from company_memberships where company_id = 'victim' for update`); err != nil {
		t.Fatal(err)
	}

	requests := []struct {
		name string
		call func(ctx context.Context, actor string) error
	}{
		{"grant", func(ctx context.Context, actor string) error {
			_, _, err := s.SetMember(ctx, authz.Actor{ID: actor}, member(actor+"-friend", "victim", authz.RoleOwner))
			return err
		}},
		{"demote an owner", func(ctx context.Context, actor string) error {
			_, _, err := s.SetMember(ctx, authz.Actor{ID: actor}, member("boss", "victim", authz.RoleViewer))
			return err
		}},
		{"remove", func(ctx context.Context, actor string) error {
			_, err := s.RemoveMember(ctx, authz.Actor{ID: actor}, "victim", "staff")
			return err
		}},
		{"create a child", func(ctx context.Context, actor string) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: actor}, authz.Company{Name: "Planted", ParentID: "victim"})
			return err
		}},
		{"create a root with its id", func(ctx context.Context, actor string) error {
			_, _, err := s.CreateCompany(ctx, authz.Actor{ID: actor}, authz.Company{ID: "victim", Name: "Mine"})
			return err
		}},
		{"rename", func(ctx context.Context, actor string) error {
			_, _, err := s.UpdateCompany(ctx, authz.Actor{ID: actor}, "victim", authz.CompanyUpdate{Name: ptr("Pwned")})
			return err
		}},
		{"detach its child", func(ctx context.Context, actor string) error {
			_, _, err := s.UpdateCompany(ctx, authz.Actor{ID: actor}, "victim-kid", authz.CompanyUpdate{ParentID: ptr("")})
			return err
		}},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	const refusalsMetric = "tenantgate_management_outsider_refusals_total"
	refusals := testutil.MetricValue(t, reg, refusalsMetric)
	auditsBefore := auditCount(t, s)
	for _, actor := range []string{"stranger", "former"} {
		for _, r := range requests {
			t.Run(actor+"/"+r.name, func(t *testing.T) {
				// Waiting for the held locks would run into this deadline.
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				defer cancel()
				err := r.call(ctx, actor)
				if !authz.Refused(err) {
					t.Fatalf("= %v, want a refusal without waiting for the company's locks", err)
				}
			})
		}
	}
	if n := auditCount(t, s) - auditsBefore; n != 0 {
		t.Errorf("outsiders' refusals wrote %d audit rows, want none", n)
	}
	if got, want := testutil.MetricValue(t, reg, refusalsMetric)-refusals, float64(2*len(requests)); got != want {
		t.Errorf("outsider refusals counted %v, want %v", got, want)
	}

	// A member's refusal is still the company's business.
	if err := held.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetMember(ctx, authz.Actor{ID: "staff"}, member("boss", "victim", authz.RoleViewer)); !errors.Is(err, authz.ErrForbidden) {
		t.Fatalf("admin demoting the owner = %v, want ErrForbidden", err)
	}
	if n := auditCount(t, s) - auditsBefore; n != 1 {
		t.Errorf("a member's refusal wrote %d audit rows, want 1", n)
	}
}

// TestRecreatedCompanyHasAFreshAudit: audit rows belong to the company that
// held the ID when they were written, so whoever creates a company with the
// ID of a deleted one (or one the application deleted with TRUNCATE) cannot
// read its predecessor's history.
func TestRecreatedCompanyHasAFreshAudit(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	ctx := t.Context()
	for _, deletion := range []string{
		`delete from companies where id = 'reused'`,
		`truncate companies, company_memberships`,
	} {
		t.Run(deletion, func(t *testing.T) {
			if _, _, err := s.CreateCompany(ctx, authz.Actor{ID: "first"}, authz.Company{ID: "reused", Name: "First"}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.SetMember(ctx, authz.Actor{ID: "first"}, member("secret-partner", "reused", authz.RoleAdmin)); err != nil {
				t.Fatal(err)
			}
			if old, err := s.Audit(ctx, authz.Actor{ID: "first"}, "reused", 100, 0); err != nil || len(old) != 2 {
				t.Fatalf("first incarnation's audit = %d entries, %v; want 2", len(old), err)
			}
			if _, err := s.Pool().Exec(ctx, deletion); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.CreateCompany(ctx, authz.Actor{ID: "second"}, authz.Company{ID: "reused", Name: "Second"}); err != nil {
				t.Fatal(err)
			}
			entries, err := s.Audit(ctx, authz.Actor{ID: "second"}, "reused", 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Actor != "second" || entries[0].Action != authz.ActionCompanyCreate {
				t.Errorf("recreated company's audit = %+v, want only its own creation", entries)
			}
			// The old rows are kept, for an operator, not shown.
			old := queryStringsPool(t, s, `select actor from tenantgate.audit_log
				where company_id = 'reused' and actor = 'first'`)
			if len(old) < 2 {
				t.Errorf("the first incarnation's rows are gone: %q", old)
			}
			if _, err := s.Pool().Exec(ctx, `delete from companies where id = 'reused'`); err != nil {
				t.Fatal(err)
			}
		})
	}
}
