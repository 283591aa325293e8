package consoletest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// waitTimeout bounds a wait for the page to show something. A console that
// works shows it well within a second; the rest is for a busy CI machine.
const waitTimeout = 30 * time.Second

// screenshotsEnv names a directory for PNGs of the main views.
const screenshotsEnv = "TENANTGATE_SCREENSHOTS"

// evalJS calls fn, the source of a JavaScript function, in the page with
// args (passed as JSON, so that no value needs quoting) and returns what
// it returns.
func evalJS[T any](t *testing.T, b *testutil.Browser, fn string, args ...any) T {
	t.Helper()
	encoded := make([]string, len(args))
	for i, a := range args {
		j, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		encoded[i] = string(j)
	}
	return testutil.BrowserRun(b, chromedp.Evaluate[T](fmt.Sprintf("(%s)(%s)", fn, strings.Join(encoded, ", "))))
}

// waitFor polls until fn, called as evalJS calls it, returns want; what
// names it in the failure.
func waitFor[T any](t *testing.T, b *testutil.Browser, what string, want T, fn string, args ...any) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, func() error {
		if got := evalJS[T](t, b, fn, args...); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s: got %#v, want %#v", what, got, want)
		}
		return nil
	})
}

// JavaScript the tests read the page with.
const (
	// textOf is the trimmed text of the first element a selector matches.
	textOf = `(sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : "<no " + sel + ">"; }`
	// shownView is the id of the one view not hidden.
	shownView = `() => [...document.querySelectorAll("main > section")].filter((s) => !s.hidden).map((s) => s.id).join(" ")`
	// treeOf maps each company of the tree to its own role and origin,
	// not those of the companies nested in it.
	treeOf = `() => Object.fromEntries([...document.querySelectorAll("#companies li[data-company]")].map((li) => {
		const own = (sel) => [...li.querySelectorAll(sel)].find((e) => e.closest("li[data-company]") === li);
		return [li.dataset.company, { role: own(".role")?.textContent.trim() ?? "", origin: own(".origin")?.textContent.trim() ?? "" }];
	}))`
	// companyLoaded: the company view shows id with its permission matrix
	// and either its members or the note why they are not shown.
	companyLoaded = `(id) => { const v = document.querySelector("#company-view");
		return !v.hidden && v.dataset.company === id && document.querySelectorAll("#permissions tr[data-permission]").length === 6
			&& (!document.querySelector("#members-box").hidden || !document.querySelector("#members-note").hidden); }`
	// newestAudit is the actor, action, target and outcome of the newest n
	// entries of the audit view.
	newestAudit = `(n) => [...document.querySelectorAll("#audit tr.entry")].slice(0, n).map((tr) => [...tr.cells].slice(1, 5).map((td) => td.textContent.trim()))`
	// memberOf is the role and status of a user in the members table,
	// empty without a row.
	memberOf = `(user) => { const tr = [...document.querySelectorAll("#members tr[data-user]")].find((tr) => tr.dataset.user === user);
		return tr ? [tr.querySelector(".role").textContent.trim(), tr.querySelector(".status").textContent.trim()] : []; }`
)

// treeItem is a company as the tree shows it.
type treeItem struct {
	Role   string `json:"role"`
	Origin string `json:"origin"`
}

// waitTree waits until the tree shows exactly want.
func waitTree(t *testing.T, b *testutil.Browser, want map[string]treeItem) {
	t.Helper()
	waitFor(t, b, "the company tree", want, treeOf)
}

// signIn signs user in by pasting a token, as anybody can on any gateway,
// and waits for their companies.
func signIn(t *testing.T, b *testutil.Browser, g *gateway, user string) {
	t.Helper()
	b.Do(chromedp.Navigate(g.url+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), g.token(t, user)),
		chromedp.Click(chromedp.CSS("#token-signin")))
	waitSignedIn(t, b, user)
}

func waitSignedIn(t *testing.T, b *testutil.Browser, user string) {
	t.Helper()
	waitFor(t, b, "the signed-in user", user, textOf, "#whoami")
	waitFor(t, b, "the view", "companies-view", shownView)
}

// companyLink is a JavaScript path to the link of company id in the tree.
func companyLink(id string) chromedp.JSPath {
	j, _ := json.Marshal(id) // a string always encodes
	return chromedp.JSPath(fmt.Sprintf(`document.querySelector('#companies li[data-company="' + CSS.escape(%s) + '"] a.name')`, j))
}

// openCompany follows the tree's link to company id and waits until the
// company view has loaded.
func openCompany(t *testing.T, b *testutil.Browser, id string) {
	t.Helper()
	b.Do(chromedp.Click(companyLink(id)))
	waitFor(t, b, "the company view of "+id, true, companyLoaded, id)
}

// openAudit follows the company view's link to its audit log and waits for
// its first entries.
func openAudit(t *testing.T, b *testutil.Browser, id string) {
	t.Helper()
	b.Do(chromedp.Click(chromedp.CSS("#audit-link")))
	waitFor(t, b, "the audit view of "+id, true,
		`(id) => { const v = document.querySelector("#audit-view"); return !v.hidden && v.dataset.company === id && document.querySelectorAll("#audit tr.entry").length > 0; }`, id)
}

// setMember submits the member form of the company view.
func setMember(b *testutil.Browser, user, role string) {
	b.Do(chromedp.SetValue(chromedp.CSS("#member-user"), user),
		chromedp.SetValue(chromedp.CSS("#member-role"), role),
		chromedp.Click(chromedp.CSS("#member-submit")))
}

// waitNotice waits for a notice of class kind ("ok" or "error") and
// returns its text.
func waitNotice(t *testing.T, b *testutil.Browser, kind string) string {
	t.Helper()
	sel := "#notice." + kind
	waitFor(t, b, "a notice "+sel, true, `(sel) => { const n = document.querySelector(sel); return !!n && n.textContent.trim() !== ""; }`, sel)
	return evalJS[string](t, b, textOf, sel)
}

// screenshot saves the viewport as name in the directory screenshotsEnv
// names, if any.
func screenshot(t *testing.T, b *testutil.Browser, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	png := testutil.BrowserRun(b, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
