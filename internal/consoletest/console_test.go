package consoletest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// The users of TestConsole's gateway.
const (
	olivia = "olivia@acme.example" // the one owner of acme; the identity provider signs her in
	adam   = "adam@acme.example"   // admin of acme
	vera   = "vera@acme.example"   // viewer of acme, admin of acme-labs
)

// Markup in IDs and names, which the console must show as text. A payload
// that runs sets window.__xss and opens a dialog; markup put in the page
// with innerHTML also breaks the Content-Security-Policy, which the
// browser reports on the console.
const (
	xssUser      = `<img src=x onerror="window.__xss=1;alert(1)">`
	xssCompany   = `"><script>window.__xss=2;alert(2)</script>`
	xssName      = `<img src=x onerror="window.__xss=3;alert(3)">`
	xssChild     = `<svg onload="window.__xss=4;alert(4)">`
	xssChildName = `'"><iframe src="javascript:window.top.__xss=5;alert(5)">`
	xssMember    = `"><script>window.__xss=6;alert(6)</script>`
	xssNewMember = `<img src=x onerror="window.__xss=7;alert(7)">@example`
)

var consoleCompanies = []company{
	{"acme", "Acme Corp", ""},
	{"acme-labs", "Acme Labs", "acme"},
	{"acme-shop", "Acme Shop", "acme"},
	{xssCompany, xssName, ""},
	{xssChild, xssChildName, xssCompany},
}

var consoleMemberships = []membership{
	{olivia, "acme", "owner"},
	{adam, "acme", "admin"},
	{vera, "acme", "viewer"},
	{vera, "acme-labs", "admin"},
	{xssUser, xssCompany, "owner"},
	{xssMember, xssChild, "viewer"},
}

// TestConsole runs the console of one gateway, with sign-in at a test
// identity provider, through what its users do. Each subtest checks only
// what its own writes did, so each stands on its own.
func TestConsole(t *testing.T) {
	g := startGateway(t, olivia, slices.Concat(consoleCompanies, treeCompanies), slices.Concat(consoleMemberships, treeMemberships), func(c *app.Config) {
		c.ConsoleOIDCClientID = oidcClientID
	}, treeSeed...)
	t.Run("security headers", func(t *testing.T) { testHeaders(t, g) })
	t.Run("roles and origins", func(t *testing.T) { testRoles(t, g) })
	t.Run("manage members", func(t *testing.T) { testManage(t, g) })
	t.Run("refusals", func(t *testing.T) { testRefusals(t, g) })
	t.Run("audit", func(t *testing.T) { testAudit(t, g) })
	t.Run("markup shows as text", func(t *testing.T) { testXSS(t, g) })
	t.Run("keyboard", func(t *testing.T) { testKeyboard(t, g) })
	t.Run("labels and narrow screens", func(t *testing.T) { testNarrow(t, g) })
	t.Run("OIDC sign-in", func(t *testing.T) { testOIDC(t, g) })
	t.Run("create companies", func(t *testing.T) { testCreate(t, g) })
	t.Run("move companies", func(t *testing.T) { testMove(t, g) })
	t.Run("search", func(t *testing.T) { testSearch(t, g) })
	t.Run("companies in batches", func(t *testing.T) { testTreePaging(t, g) })
	t.Run("audit in pages", func(t *testing.T) { testAuditPaging(t, g) })
	t.Run("members hidden from a viewer", func(t *testing.T) { testMembersNote(t, g) })
}

// TestConsoleOff: with --console=false nothing is served under /console/.
func TestConsoleOff(t *testing.T) {
	g := startGateway(t, olivia, nil, nil, func(c *app.Config) { c.Console = false })
	for _, path := range []string{"/console", "/console/", "/console/app.js", "/console/config.json"} {
		resp, err := http.Get(g.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s with --console=false: %s %q, want 404 application/problem+json", path, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
}

func testHeaders(t *testing.T, g *gateway) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(g.url + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || loc != "/console/" {
		t.Errorf("GET /console: %s to %q, want a redirect to /console/", resp.Status, loc)
	}
	for _, path := range []string{"/console/", "/console/app.js", "/console/style.css", "/console/config.json"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(g.url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s, want 200", path, resp.Status)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			directives := map[string]string{}
			for d := range strings.SplitSeq(csp, ";") {
				name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
				directives[name] = value
			}
			// Scripts and styles only from the console's own files; requests
			// only to the gateway and the identity provider's token endpoint.
			for name, want := range map[string]string{"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self' " + g.idp.URL} {
				if directives[name] != want {
					t.Errorf("GET %s: Content-Security-Policy %q has %s %q, want %q", path, csp, name, directives[name], want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") {
				t.Errorf("GET %s: Content-Security-Policy %q allows inline code", path, csp)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
			}
			if path != "/console/config.json" {
				return
			}
			var config struct {
				DemoUsers []any `json:"demo_users"`
				OIDC      struct {
					ClientID              string `json:"client_id"`
					AuthorizationEndpoint string `json:"authorization_endpoint"`
					TokenEndpoint         string `json:"token_endpoint"`
				} `json:"oidc"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&config); err != nil {
				t.Fatal(err)
			}
			if len(config.DemoUsers) != 0 || config.OIDC.ClientID != oidcClientID ||
				config.OIDC.AuthorizationEndpoint != g.idp.URL+"/authorize" || config.OIDC.TokenEndpoint != g.idp.URL+"/token" {
				t.Errorf("config.json = %+v, want no demo users and the provider's endpoints from its discovery document", config)
			}
		})
	}
	// The demo's sign-in mints tokens for anybody who asks: only the demo
	// may offer it.
	resp, err = http.Post(g.url+"/console/demo/token", "application/json", strings.NewReader(`{"user":"`+olivia+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /console/demo/token outside the demo: %s, want 404", resp.Status)
	}
}

func testRoles(t *testing.T, g *gateway) {
	for _, tc := range []struct {
		user string
		want map[string]treeItem
	}{
		{olivia, map[string]treeItem{
			"acme":      {"owner", "direct"},
			"acme-labs": {"owner", "inherited from acme"},
			"acme-shop": {"owner", "inherited from acme"},
		}},
		// Roles add up: the stronger one on acme-labs starts there.
		{vera, map[string]treeItem{
			"acme":      {"viewer", "direct"},
			"acme-labs": {"admin", "direct"},
			"acme-shop": {"viewer", "inherited from acme"},
		}},
		{adam, map[string]treeItem{
			"acme":      {"admin", "direct"},
			"acme-labs": {"admin", "inherited from acme"},
			"acme-shop": {"admin", "inherited from acme"},
		}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			b := testutil.NewBrowser(t)
			signIn(t, b, g, tc.user)
			waitTree(t, b, tc.want)
		})
	}
}

// testManage adds a member through the form and sees the row at once: the
// reads after the write carry its consistency token, so the page needs no
// reload and no luck with the sync.
func testManage(t *testing.T, g *gateway) {
	const nina = "nina@acme.example"
	b := testutil.NewBrowser(t)
	signIn(t, b, g, olivia)
	openCompany(t, b, "acme-labs")
	requests := watchRequests(t, b)
	// A reload would lose it.
	evalJS[bool](t, b, `() => { window.__samePage = true; return true; }`)
	setMember(b, nina, "editor")
	if got := waitNotice(t, b, "ok"); !strings.Contains(got, nina) {
		t.Errorf("the notice after adding %s says %q", nina, got)
	}
	waitFor(t, b, "nina's row", []string{"editor", "active"}, memberOf, nina)
	if !evalJS[bool](t, b, `() => window.__samePage === true`) {
		t.Error("the page was reloaded to show the new member")
	}
	if err := requests.consistentAfterWrite(http.MethodPut, "/v1/companies/acme-labs/members/"+nina); err != nil {
		t.Error(err)
	}

	b.Do(chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	signIn(t, b, g, nina)
	waitTree(t, b, map[string]treeItem{"acme-labs": {"editor", "direct"}})
}

// requestLog is the API requests a page sent.
type requestLog struct {
	stop func()
	mu   sync.Mutex
	reqs []*network.Request
}

// watchRequests records the requests b's page sends from now until the
// test ends or consistentAfterWrite looks at them.
func watchRequests(t *testing.T, b *testutil.Browser) *requestLog {
	t.Helper()
	ctx, cancel := context.WithCancel(b.Context())
	events := chromedp.Events(ctx, network.RequestWillBeSent)
	l := &requestLog{}
	var done sync.WaitGroup
	done.Go(func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.reqs = append(l.reqs, ev.Request)
			l.mu.Unlock()
		}
	})
	l.stop = func() {
		cancel()
		done.Wait()
	}
	t.Cleanup(l.stop)
	return l
}

// consistentAfterWrite checks that a request method path (unescaped) was
// sent and that every API read after it carried a Consistency-Token.
func (l *requestLog) consistentAfterWrite(method, path string) error {
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	reads, wrote := 0, false
	for _, r := range l.reqs {
		u, err := url.Parse(r.URL)
		if err != nil {
			return err
		}
		switch {
		case r.Method == method && u.Path == path:
			wrote = true
		case wrote && r.Method == http.MethodGet && strings.HasPrefix(u.Path, "/v1/"):
			reads++
			if header(r.Headers, "Consistency-Token") == "" {
				return fmt.Errorf("GET %s after the write had no Consistency-Token", r.URL)
			}
		}
	}
	if !wrote || reads == 0 {
		return fmt.Errorf("the page sent %s %s: %v, and %d reads after it", method, path, wrote, reads)
	}
	return nil
}

func header(h network.Headers, name string) string {
	for k, v := range h {
		if s, ok := v.(string); ok && strings.EqualFold(k, name) {
			return s
		}
	}
	return ""
}

// testRefusals: what the API refuses is said in plain words and changes
// nothing.
func testRefusals(t *testing.T, g *gateway) {
	for _, tc := range []struct {
		name, user string
		act        func(b *testutil.Browser)
		// say is what the notice must mention; row is the member whose
		// role and status must be as before.
		say, row string
		before   []string
	}{
		{name: "an admin makes himself owner", user: adam, say: "own membership", row: adam,
			act:    func(b *testutil.Browser) { setMember(b, adam, "owner") },
			before: []string{"admin", "active"}},
		{name: "the last owner leaves", user: olivia, say: "owner", row: olivia,
			act: func(b *testutil.Browser) {
				b.Do(chromedp.Click(chromedp.CSS(`#members tr[data-user="` + olivia + `"] button.remove`)))
			},
			before: []string{"owner", "active"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.NewBrowser(t)
			signIn(t, b, g, tc.user)
			openCompany(t, b, "acme")
			tc.act(b)
			got := waitNotice(t, b, "error")
			if !strings.Contains(got, tc.say) || strings.ContainsAny(got, "{}") || strings.Contains(got, "HTTP") {
				t.Errorf("the refusal says %q, want plain words about %q", got, tc.say)
			}
			// Read again from the gateway, not from the page as it was.
			b.Do(chromedp.Reload())
			waitFor(t, b, "the company view of acme", true, companyLoaded, "acme")
			if row := evalJS[[]string](t, b, memberOf, tc.row); !slices.Equal(row, tc.before) {
				t.Errorf("after the refusal %s is %q, want %q", tc.row, row, tc.before)
			}
		})
	}
}

// testAudit: the audit log shows a company's writes, refused ones too,
// newest first.
func testAudit(t *testing.T, g *gateway) {
	const paul = "paul@acme.example"
	b := testutil.NewBrowser(t)
	signIn(t, b, g, olivia)
	openCompany(t, b, "acme-shop")
	setMember(b, paul, "viewer")
	waitNotice(t, b, "ok")
	waitFor(t, b, "paul's row", 1, `(sel) => document.querySelectorAll(sel).length`, `#members tr[data-user="`+paul+`"]`)
	setMember(b, olivia, "admin")
	waitNotice(t, b, "error")
	openAudit(t, b, "acme-shop")
	want := [][]string{
		{olivia, "member.set", olivia, "forbidden"},
		{olivia, "member.set", paul, "allowed"},
	}
	waitFor(t, b, "the newest audit entries", want, newestAudit, len(want))
}

// testXSS browses every view where the hostile IDs and names show, as
// their owner, and adds and refuses more of them.
func testXSS(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	signIn(t, b, g, xssUser)
	waitTree(t, b, map[string]treeItem{
		xssCompany: {"owner", "direct"},
		xssChild:   {"owner", "inherited from " + xssCompany},
	})
	names := evalJS[map[string]string](t, b, `() => Object.fromEntries([...document.querySelectorAll("#companies li[data-company]")].map((li) => [li.dataset.company, li.querySelector("a.name").textContent]))`)
	if want := map[string]string{xssCompany: xssName, xssChild: xssChildName}; !maps.Equal(names, want) {
		t.Errorf("the tree names the companies %q, want %q", names, want)
	}

	openCompany(t, b, xssCompany)
	if got := evalJS[string](t, b, textOf, "#company-name"); got != xssName {
		t.Errorf("company name shown as %q, want %q", got, xssName)
	}
	setMember(b, xssNewMember, "viewer")
	if got := waitNotice(t, b, "ok"); !strings.Contains(got, xssNewMember) || !strings.Contains(got, xssCompany) {
		t.Errorf("the notice says %q, want it to name %q in %q", got, xssNewMember, xssCompany)
	}
	waitFor(t, b, "the members", sorted(xssNewMember, xssUser), `() => [...document.querySelectorAll("#members tr[data-user]")].map((tr) => tr.dataset.user).sort()`)
	setMember(b, xssUser, "admin")
	waitNotice(t, b, "error")

	openAudit(t, b, xssCompany)
	want := [][]string{
		{xssUser, "member.set", xssUser, "forbidden"},
		{xssUser, "member.set", xssNewMember, "allowed"},
	}
	waitFor(t, b, "the newest audit entries", want, newestAudit, len(want))

	b.Do(chromedp.Click(chromedp.CSS("header .brand a")))
	waitFor(t, b, "the view", "companies-view", shownView)
	openCompany(t, b, xssChild)
	waitFor(t, b, "the effective members", sorted(xssMember, xssUser, xssNewMember), `() => [...document.querySelectorAll("#effective-members tr[data-user]")].map((tr) => tr.dataset.user).sort()`)
	if got := evalJS[string](t, b, textOf, "#company-name"); got != xssChildName {
		t.Errorf("company name shown as %q, want %q", got, xssChildName)
	}

	if evalJS[bool](t, b, `() => typeof window.__xss !== "undefined"`) {
		t.Error("a payload ran: window.__xss is set")
	}
	if injected := evalJS[[]string](t, b, `() => [...document.querySelectorAll("img, svg, iframe, script:not([src])")].map((e) => e.outerHTML)`); len(injected) > 0 {
		t.Errorf("markup from the data became elements: %q", injected)
	}
}

// sorted is users in the order of JavaScript's default sort, which for
// ASCII is Go's.
func sorted(users ...string) []string {
	slices.Sort(users)
	return users
}

// focusedJS names the focused element: its id, or the company of a tree
// link.
const focusedJS = `() => { const e = document.activeElement; if (!e) return "";
	if (e.matches("#companies a.name")) return "company:" + e.closest("li[data-company]").dataset.company;
	return e.id || e.tagName.toLowerCase(); }`

// tabUntil presses Tab until every one of want has had the focus, in
// order, and fails after maxTabs presses.
func tabUntil(t *testing.T, b *testutil.Browser, want ...string) {
	t.Helper()
	const maxTabs = 40
	var seen []string
	next := 0
	for range maxTabs {
		b.Do(chromedp.KeyEvent(kb.Tab))
		got := evalJS[string](t, b, focusedJS)
		seen = append(seen, got)
		if got == want[next] {
			if next++; next == len(want) {
				return
			}
		}
	}
	t.Errorf("Tab moved the focus through %q, want %q in this order", seen, want)
}

// testKeyboard signs in and opens a company with the keyboard alone.
func testKeyboard(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	b.Do(chromedp.Navigate(g.url+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	tabUntil(t, b, "oidc-signin", "token", "token-signin")
	b.Do(chromedp.Focus(chromedp.CSS("#token")), chromedp.SetValue(chromedp.CSS("#token"), g.token(t, vera)))
	tabUntil(t, b, "token-signin")
	b.Do(chromedp.KeyEvent(kb.Enter))
	waitSignedIn(t, b, vera)
	waitTree(t, b, map[string]treeItem{
		"acme":      {"viewer", "direct"},
		"acme-labs": {"admin", "direct"},
		"acme-shop": {"viewer", "inherited from acme"},
	})
	tabUntil(t, b, "company:acme", "company:acme-labs", "company:acme-shop")
	b.Do(chromedp.KeyEvent(kb.Enter))
	waitFor(t, b, "the company view of acme-shop", true, companyLoaded, "acme-shop")
}

// testNarrow checks each main view at 400 px wide: every control has a
// label and the page does not scroll sideways.
func testNarrow(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	b.Do(chromedp.EmulateViewport(400, 800))
	check := func(view string) {
		t.Helper()
		if unlabelled := evalJS[[]string](t, b, `() => [...document.querySelectorAll("input, select, textarea")].filter((e) => e.type !== "hidden" && e.labels.length === 0).map((e) => e.id || e.outerHTML)`); len(unlabelled) > 0 {
			t.Errorf("%s: controls without a label: %q", view, unlabelled)
		}
		if width := evalJS[[]int](t, b, `() => [window.innerWidth, document.documentElement.scrollWidth]`); width[0] != 400 || width[1] > 400 {
			t.Errorf("%s: the page is %d px wide in a viewport of %d px, want at most 400", view, width[1], width[0])
		}
	}
	b.Do(chromedp.Navigate(g.url+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	check("sign-in")
	signIn(t, b, g, olivia)
	check("my companies")
	openCompany(t, b, "acme-labs")
	setMember(b, "narrow@acme.example", "viewer")
	waitNotice(t, b, "ok")
	waitFor(t, b, "the new member's row", 1, `(sel) => document.querySelectorAll(sel).length`, `#members tr[data-user="narrow@acme.example"]`)
	b.Do(chromedp.Click(chromedp.CSS(`#permissions tr[data-permission="manage_owners"] button.why`)),
		chromedp.WaitVisible(chromedp.CSS(`#permissions tr[data-permission="manage_owners"] .explanation`)))
	check("company")
	openAudit(t, b, "acme-labs")
	check("audit")
}

// testOIDC signs in at the identity provider: the authorization code flow
// with PKCE, the code exchanged by the page itself.
func testOIDC(t *testing.T, g *gateway) {
	b := testutil.NewBrowser(t)
	b.Do(chromedp.Navigate(g.url+"/console/"),
		chromedp.Click(chromedp.CSS("#oidc-signin")),
		chromedp.WaitVisible(chromedp.CSS("#companies li[data-company]")))
	waitSignedIn(t, b, olivia)
	// The code must not stay in the address bar or the history.
	if got := evalJS[string](t, b, `() => location.search`); got != "" {
		t.Errorf("after the sign-in the URL still holds %q", got)
	}
}
