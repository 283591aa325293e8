package consoletest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// demoStartTimeout bounds the demo's start: migrations, SpiceDB, the
// first sync and its examples, on a busy machine.
const demoStartTimeout = 2 * time.Minute

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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = testutil.NewEmptyTestDatabase(t)
	cfg.Listener = ln
	var out testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Demo(ctx, cfg, slog.New(slog.DiscardHandler), &out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo returned %v", err)
		}
	})
	testutil.Eventually(t, demoStartTimeout, func() error {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("demo ended early: %v\n%s", err, out.String())
		default:
		}
		if !strings.Contains(out.String(), "Press Ctrl-C to stop") {
			return errors.New("the demo has not printed its examples yet")
		}
		return nil
	})
	m := consoleLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the demo printed no %q line:\n%s", consoleLine, out.String())
	}
	if want := "http://" + ln.Addr().String() + "/console/"; m[1] != want {
		t.Errorf("the demo printed the console at %s, want %s", m[1], want)
	}
	return m[1]
}
