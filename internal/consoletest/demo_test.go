package consoletest

import (
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

// consoleLine is the line of the demo's output that names the console.
var consoleLine = regexp.MustCompile(`(?m)^Console: (http://\S+/console/) `)

// TestDemo signs in with the demo's one-click buttons and checks that each
// sample user sees their own companies, with the roles and origins the
// sample data gives them.
func TestDemo(t *testing.T) {
	consoleURL := runDemo(t)
	inheritedFromHolding := treeItem{"owner", "inherited from acme-holding"}
	for _, tc := range []struct {
		user string
		want map[string]treeItem
		// tour visits the views the screenshots show.
		tour bool
	}{
		{user: "alice@acme.example", tour: true, want: map[string]treeItem{
			"acme-holding":  {"owner", "direct"},
			"acme-europe":   inheritedFromHolding,
			"acme-americas": inheritedFromHolding,
			"acme-france":   inheritedFromHolding,
			"acme-germany":  inheritedFromHolding,
			"acme-paris":    inheritedFromHolding,
		}},
		{user: "erin@globex.example", want: map[string]treeItem{
			"globex":      {"owner", "direct"},
			"globex-labs": {"owner", "inherited from globex"},
			// Its parent is not erin's to see.
			"acme-germany": {"viewer", "direct"},
		}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			b := testutil.NewBrowser(t)
			button := chromedp.CSS(`#demo-users button[data-user="` + tc.user + `"]`)
			b.Do(chromedp.Navigate(consoleURL), chromedp.WaitVisible(button))
			if tc.tour {
				screenshot(t, b, "console-signin.png")
			}
			b.Do(chromedp.Click(button))
			waitSignedIn(t, b, tc.user)
			waitTree(t, b, tc.want)
			if !tc.tour {
				return
			}
			screenshot(t, b, "console-companies.png")
			openCompany(t, b, "acme-france")
			why := `#permissions tr[data-permission="manage_owners"] `
			b.Do(chromedp.Click(chromedp.CSS(why+"button.why")), chromedp.WaitVisible(chromedp.CSS(why+".explanation")))
			// The matrix, an answer explained and the members, in one view.
			evalJS[bool](t, b, `() => { document.querySelector("#permissions").scrollIntoView(); return true; }`)
			screenshot(t, b, "console-company.png")
			openAudit(t, b, "acme-france")
			// The demo's own refused request, made before it printed the
			// console's URL.
			waitFor(t, b, "the audit of acme-france", [][]string{{"bob@acme.example", "member.set", "bob@acme.example", "forbidden"}}, newestAudit, 1)
			screenshot(t, b, "console-audit.png")
		})
	}
}

// runDemo runs `tenantgate demo` in this process until the test ends and
// returns the console URL it printed.
func runDemo(t *testing.T) string {
	t.Helper()
	base, out := servetest.Demo(t, func(*app.Config) {})
	m := consoleLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo printed no %q line:\n%s", consoleLine, out)
	}
	if want := base + "/console/"; m[1] != want {
		t.Errorf("the demo printed the console at %s, want %s", m[1], want)
	}
	return m[1]
}
