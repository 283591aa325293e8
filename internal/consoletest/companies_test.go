package consoletest

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// The users of TestConsole's gateway who create, move, search and page,
// in trees of their own so that the other subtests' trees stay as they
// are.
const (
	rita = "rita@initech.example" // owner of initech, and of initech-spinoff of her own
	ian  = "ian@initech.example"  // admin of initech
	vic  = "vic@initech.example"  // viewer of initech
	hank = "hank@hooli.example"   // owner of hooli, with more companies below it than the tree shows at once
)

// hooliChildren is how many companies the seed puts below hooli: more than
// the 200 the tree renders at once. hooliAudit is how many audit entries it
// writes for hooli: more than the 50 of a page.
const (
	hooliChildren = 250
	hooliAudit    = 60
)

var treeCompanies = []company{
	{"initech", "Initech", ""},
	{"initech-east", "Initech East", "initech"},
	{"initech-west", "Initech West", "initech"},
	{"initech-berlin", "Initech Berlin", "initech-east"},
	{"initech-spinoff", "Initech Spinoff", "initech"},
	{"hooli", "Hooli", ""},
}

var treeMemberships = []membership{
	{rita, "initech", "owner"},
	{rita, "initech-spinoff", "owner"},
	{ian, "initech", "admin"},
	{vic, "initech", "viewer"},
	{hank, "hooli", "owner"},
}

// treeSeed writes hooli's companies and audit entries, each in one
// statement. Audit entries belong to the company's incarnation, as the
// gateway writes them.
var treeSeed = []string{
	fmt.Sprintf(`INSERT INTO companies (id, name, parent_id)
		SELECT format('hooli-%%s', lpad(i::text, 3, '0')), format('Hooli %%s', lpad(i::text, 3, '0')), 'hooli'
		FROM generate_series(1, %d) i`, hooliChildren),
	fmt.Sprintf(`INSERT INTO tenantgate.audit_log (actor, action, company_id, target, outcome, reason, incarnation)
		SELECT %s, 'member.set', 'hooli', format('user-%%s@hooli.example', lpad(i::text, 2, '0')), 'allowed', 'seeded',
			(SELECT incarnation FROM tenantgate.company_incarnations WHERE company_id = 'hooli')
		FROM generate_series(1, %d) i ORDER BY i`, quoteLiteral(hank), hooliAudit),
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// placeOf is where the tree shows company id: the company whose group
// holds it ("" at the top of the tree), its own role and origin.
const placeOf = `(id) => {
	const li = [...document.querySelectorAll("#companies li[data-company]")].find((li) => li.dataset.company === id);
	if (!li) return { parent: "<not in the tree>", role: "", origin: "" };
	const list = li.parentElement;
	const parent = list.matches("#companies") ? ""
		: list.matches('ul[role="group"]') && list.parentElement.matches("li[data-company]") ? list.parentElement.dataset.company
		: "<in " + list.outerHTML.slice(0, 40) + ">";
	const own = (sel) => [...li.querySelectorAll(sel)].find((e) => e.closest("li[data-company]") === li)?.textContent.trim() ?? "";
	return { parent, role: own(".role"), origin: own(".origin") };
}`

// shownCompanies is the companies the tree shows, in its order.
const shownCompanies = `() => [...document.querySelectorAll("#companies li[data-company]")].filter((li) => li.offsetParent !== null).map((li) => li.dataset.company)`

// isShown tells whether the element a selector matches is rendered.
const isShown = `(sel) => { const e = document.querySelector(sel); return !!e && !e.hidden && e.offsetParent !== null; }`

type place struct {
	Parent string `json:"parent"`
	Role   string `json:"role"`
	Origin string `json:"origin"`
}

// showTree goes back to the company tree, read again after any write.
func showTree(t *testing.T, b *testutil.Browser) {
	t.Helper()
	b.Do(chromedp.Click(chromedp.CSS("header .brand a")))
	waitFor(t, b, "the view", "companies-view", shownView)
}

// waitPlace waits until the tree shows company id at want.
func waitPlace(t *testing.T, b *testutil.Browser, id string, want place) {
	t.Helper()
	waitFor(t, b, "the place of "+id+" in the tree", want, placeOf, id)
}

// plainError waits for a refusal and checks that it mentions say in plain
// words.
func plainError(t *testing.T, b *testutil.Browser, say string) {
	t.Helper()
	got := waitNotice(t, b, "error")
	if !strings.Contains(got, say) || strings.ContainsAny(got, "{}") || strings.Contains(got, "HTTP") {
		t.Errorf("the refusal says %q, want plain words about %q", got, say)
	}
}

// fill sets the value of the field a selector matches; unlike
// chromedp.SetValue it may empty it.
func fill(t *testing.T, b *testutil.Browser, sel, value string) {
	t.Helper()
	evalJS[bool](t, b, `(sel, value) => { document.querySelector(sel).value = value; return true; }`, sel, value)
}

// createCompany submits the form that creates a company below the one
// shown; an empty id lets the gateway choose one.
func createCompany(t *testing.T, b *testutil.Browser, id, name string) {
	t.Helper()
	fill(t, b, "#company-id", id)
	fill(t, b, "#company-name-input", name)
	b.Do(chromedp.Click(chromedp.CSS("#company-submit")))
}

// moveCompany submits the move form; an empty parent makes a root.
func moveCompany(t *testing.T, b *testutil.Browser, parent string) {
	t.Helper()
	fill(t, b, "#move-parent", parent)
	b.Do(chromedp.Click(chromedp.CSS("#move-submit")))
}

// createdID is the ID the notice after a create names.
var createdID = regexp.MustCompile(`^Created (.*) \(([^()]+)\)\.$`)

// testCreate creates companies below one the user owns, with an ID of
// their choosing and with a generated one, and is refused below one they
// only view.
func testCreate(t *testing.T, g *gateway) {
	// The creator becomes the new company's owner; owner of initech
	// already, she holds nothing stronger there of her own.
	inherited := place{"initech-east", "owner", "inherited from initech"}
	t.Run("with an ID", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		signIn(t, b, g, rita)
		openCompany(t, b, "initech-east")
		requests := watchRequests(t, b)
		createCompany(t, b, "initech-east-lab", "East Lab")
		if got := waitNotice(t, b, "ok"); got != "Created East Lab (initech-east-lab)." {
			t.Errorf("the notice after the create says %q", got)
		}
		if err := requests.consistentAfterWrite(http.MethodPost, "/v1/companies"); err != nil {
			t.Error(err)
		}
		if got := evalJS[[]string](t, b, `() => ["#company-id", "#company-name-input"].map((s) => document.querySelector(s).value)`); !slices.Equal(got, []string{"", ""}) {
			t.Errorf("after the create the form still holds %q", got)
		}
		showTree(t, b)
		waitPlace(t, b, "initech-east-lab", inherited)
		if got := evalJS[string](t, b, `(id) => document.querySelector('#companies li[data-company="' + CSS.escape(id) + '"] a.name').textContent`, "initech-east-lab"); got != "East Lab" {
			t.Errorf("the tree names initech-east-lab %q, want %q", got, "East Lab")
		}
	})
	t.Run("with a generated ID", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		signIn(t, b, g, rita)
		openCompany(t, b, "initech-east")
		createCompany(t, b, "", "East Annex")
		notice := waitNotice(t, b, "ok")
		m := createdID.FindStringSubmatch(notice)
		if m == nil || m[1] != "East Annex" || m[2] == "" {
			t.Fatalf("the notice after the create says %q, want it to name East Annex and its new ID", notice)
		}
		showTree(t, b)
		waitPlace(t, b, m[2], inherited)
	})
	t.Run("as an admin", func(t *testing.T) {
		// An admin who creates becomes owner: stronger than his role above.
		b := testutil.NewBrowser(t)
		signIn(t, b, g, ian)
		openCompany(t, b, "initech-west")
		createCompany(t, b, "", "West Annex")
		notice := waitNotice(t, b, "ok")
		m := createdID.FindStringSubmatch(notice)
		if m == nil || m[1] != "West Annex" {
			t.Fatalf("the notice after the create says %q, want it to name West Annex and its new ID", notice)
		}
		showTree(t, b)
		waitPlace(t, b, m[2], place{"initech-west", "owner", "direct"})
	})
	t.Run("refused below a company the user views", func(t *testing.T) {
		b := testutil.NewBrowser(t)
		signIn(t, b, g, vic)
		openCompany(t, b, "initech")
		createCompany(t, b, "vic-branch", "Vic's Branch")
		plainError(t, b, "create on the parent company")
		b.Do(chromedp.Reload())
		waitFor(t, b, "the company view of initech", true, companyLoaded, "initech")
		showTree(t, b)
		waitPlace(t, b, "initech", place{"", "viewer", "direct"})
		if got := evalJS[place](t, b, placeOf, "vic-branch"); got.Parent != "<not in the tree>" {
			t.Errorf("after the refusal the tree shows vic-branch at %+v", got)
		}
	})
}

// testMove moves companies with the move form: not below its own
// descendant, not to the top without an owner of its own, below another
// parent, and to the top as a root of its own. The steps share one page,
// as a user would.
func testMove(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	signIn(t, b, g, rita)
	inherited := func(parent string) place { return place{parent, "owner", "inherited from initech"} }
	waitPlace(t, b, "initech-berlin", inherited("initech-east"))

	// Below its own descendant.
	openCompany(t, b, "initech-east")
	if got := evalJS[string](t, b, `() => document.querySelector("#move-parent").value`); got != "initech" {
		t.Errorf("the move form starts with parent %q, want the current one, initech", got)
	}
	moveCompany(t, b, "initech-berlin")
	plainError(t, b, "cannot move below itself")
	showTree(t, b)
	waitPlace(t, b, "initech-east", inherited("initech"))
	waitPlace(t, b, "initech-berlin", inherited("initech-east"))

	// To the top, with nobody to own it there.
	openCompany(t, b, "initech-west")
	moveCompany(t, b, "")
	plainError(t, b, "at least one active owner")
	showTree(t, b)
	waitPlace(t, b, "initech-west", inherited("initech"))

	// Below another parent she may create on.
	openCompany(t, b, "initech-berlin")
	requests := watchRequests(t, b)
	moveCompany(t, b, "initech-west")
	if got := waitNotice(t, b, "ok"); got != "Moved below initech-west." {
		t.Errorf("the notice after the move says %q", got)
	}
	if err := requests.consistentAfterWrite(http.MethodPatch, "/v1/companies/initech-berlin"); err != nil {
		t.Error(err)
	}
	showTree(t, b)
	waitPlace(t, b, "initech-berlin", inherited("initech-west"))

	// To the top with an owner of its own: her own ownership is all that
	// is left of her roles on it.
	openCompany(t, b, "initech-spinoff")
	moveCompany(t, b, "")
	if got := waitNotice(t, b, "ok"); got != "It is now a root company." {
		t.Errorf("the notice after the move says %q", got)
	}
	showTree(t, b)
	waitPlace(t, b, "initech-spinoff", place{"", "owner", "direct"})
}

// search types q into the search box, after deleting what it held, as a
// user would.
func search(t *testing.T, b *testutil.Browser, q string) {
	t.Helper()
	held := evalJS[string](t, b, `() => document.querySelector("#company-search").value`)
	b.Do(chromedp.SendKeys(chromedp.CSS("#company-search"), strings.Repeat(kb.Backspace, len([]rune(held)))+q))
}

// testSearch filters the tree by ID and by name: matches show with their
// ancestors, the rest not at all.
func testSearch(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	signIn(t, b, g, olivia)
	all := []string{"acme", "acme-labs", "acme-shop"}
	waitFor(t, b, "the tree", all, shownCompanies)
	for _, tc := range []struct {
		name, q string
		want    []string
		status  string
	}{
		// The ID is acme-labs, the name Acme Labs: only the ID matches.
		{"by ID", "acme-l", []string{"acme", "acme-labs"}, "2 companies (matches and their parents)."},
		{"by name, in any case", "ACME SH", []string{"acme", "acme-shop"}, "2 companies (matches and their parents)."},
		// A match's children that do not match stay hidden.
		{"a parent", "Corp", []string{"acme"}, "1 company (matches and their parents)."},
		{"nothing", "globex", []string{}, "No company matches."},
		{"cleared", "", all, "3 companies."},
	} {
		search(t, b, tc.q)
		waitFor(t, b, "the companies shown searching "+tc.name, tc.want, shownCompanies)
		if got := evalJS[string](t, b, textOf, "#companies-status"); got != tc.status {
			t.Errorf("searching %s (%q): the status says %q, want %q", tc.name, tc.q, got, tc.status)
		}
		for _, id := range tc.want[min(1, len(tc.want)):] {
			// Below acme as before, not at the top.
			if got := evalJS[place](t, b, placeOf, id); got.Parent != "acme" {
				t.Errorf("searching %s (%q) shows %s at %+v, want it below acme", tc.name, tc.q, id, got)
			}
		}
	}
}

// testTreePaging: a tree larger than a batch renders in batches.
func testTreePaging(t *testing.T, g *gateway) {
	const batch = 200
	total := hooliChildren + 1
	hooli := func(i int) string { return fmt.Sprintf("hooli-%03d", i) }
	count := `() => document.querySelectorAll("#companies li[data-company]").length`
	b := testutil.NewBrowser(t)
	signIn(t, b, g, hank)
	waitFor(t, b, "the number of companies shown", batch, count)
	waitFor(t, b, "the button for more companies", true, isShown, "#companies-more")
	shown := evalJS[[]string](t, b, shownCompanies)
	if shown[0] != "hooli" || shown[batch-1] != hooli(batch-1) {
		t.Errorf("the first batch runs from %s to %s, want hooli to %s", shown[0], shown[batch-1], hooli(batch-1))
	}
	if got, want := evalJS[string](t, b, textOf, "#companies-status"), fmt.Sprintf("%d companies.", total); got != want {
		t.Errorf("the status says %q, want %q", got, want)
	}
	b.Do(chromedp.Click(chromedp.CSS("#companies-more")))
	waitFor(t, b, "the number of companies shown", total, count)
	waitFor(t, b, "the button for more companies", false, isShown, "#companies-more")
	want := []string{"hooli"}
	for i := 1; i <= hooliChildren; i++ {
		want = append(want, hooli(i))
	}
	if shown := evalJS[[]string](t, b, shownCompanies); !slices.Equal(shown, want) {
		t.Errorf("after more the tree shows %d companies from %s to %s, want hooli and its %d children in order", len(shown), shown[0], shown[len(shown)-1], hooliChildren)
	}
	waitPlace(t, b, hooli(hooliChildren), place{"hooli", "owner", "inherited from hooli"})
}

// testAuditPaging: an audit log longer than a page shows in pages, each
// older than the last.
func testAuditPaging(t *testing.T, g *gateway) {
	const page = 50
	targets := `() => [...document.querySelectorAll("#audit tr.entry")].map((tr) => tr.cells[3].textContent.trim())`
	want := make([]string, 0, hooliAudit)
	for i := hooliAudit; i >= 1; i-- {
		want = append(want, fmt.Sprintf("user-%02d@hooli.example", i))
	}
	b := testutil.NewBrowser(t)
	signIn(t, b, g, hank)
	openCompany(t, b, "hooli")
	openAudit(t, b, "hooli")
	waitFor(t, b, "the first page of the audit log", want[:page], targets)
	waitFor(t, b, "the button for older entries", true, isShown, "#audit-more")
	b.Do(chromedp.Click(chromedp.CSS("#audit-more")))
	waitFor(t, b, "the audit log after older entries", want, targets)
	waitFor(t, b, "the button for older entries", false, isShown, "#audit-more")
}

// testMembersNote: a viewer sees no members and is told why, and the page
// does not ask for them; changing one is refused in plain words.
func testMembersNote(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	signIn(t, b, g, vic)
	requests := watchRequests(t, b)
	openCompany(t, b, "initech")
	if got := evalJS[string](t, b, `() => document.querySelector('#permissions tr[data-permission="manage_members"] .answer').textContent`); got != "no" {
		t.Errorf("the matrix answers manage_members with %q, want no", got)
	}
	if !evalJS[bool](t, b, isShown, "#members-note") || evalJS[bool](t, b, `() => !document.querySelector("#members-box").hidden`) {
		t.Error("a viewer is shown the members box, not the note")
	}
	if got := evalJS[string](t, b, textOf, "#members-note"); !strings.Contains(got, "manage_members") {
		t.Errorf("the members note says %q, want it to name manage_members", got)
	}
	setMember(b, "newbie@initech.example", "viewer")
	// A viewer adding a viewer lacks manage_members; the owner role is
	// not what is missing.
	plainError(t, b, "manage_members")
	requests.stop()
	requests.mu.Lock()
	defer requests.mu.Unlock()
	for _, r := range requests.reqs {
		if u, err := url.Parse(r.URL); err == nil && r.Method == http.MethodGet && strings.HasSuffix(u.Path, "/members") {
			t.Errorf("the page asked for the members it may not see: GET %s", r.URL)
		}
	}
}
