package testutil

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds everything one test does in its browser, so that a
// page that never shows what a test waits for fails the test rather than
// hanging it until the package's timeout.
const browserTimeout = 3 * time.Minute

// browserNames are the names Chromium goes by on PATH: Debian's package,
// other distributions' and Google's build.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome"}

// Browser is a headless Chromium tab of one test. Whatever the page reports
// as wrong — an uncaught exception, an error on the console (a violation
// of the Content-Security-Policy among them) or a JavaScript dialog, which
// only injected markup would open — fails the test when it ends.
type Browser struct {
	tb  testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// NewBrowser starts Chromium for tb with a viewport of 1200x800 and a
// profile of its own, closed when tb ends. Without Chromium on PATH the
// test fails: a browser test that skips would pass on every machine that
// cannot run it.
func NewBrowser(tb testing.TB) *Browser {
	tb.Helper()
	path, err := findBrowser()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	// The tests run as root in CI, where Chromium's sandbox cannot start.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.UserDataDir(tb.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	b := &Browser{tb: tb, ctx: tabCtx}
	var watchers sync.WaitGroup
	tb.Cleanup(func() {
		if err := chromedp.Cancel(tabCtx); err != nil && !errors.Is(err, context.Canceled) {
			tb.Logf("closing the browser: %v", err)
		}
		cancelTab()
		cancelAlloc()
		cancel()
		watchers.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			tb.Errorf("browser: %s", p)
		}
	})
	// Starting the browser here, before the subscriptions, makes a browser
	// that cannot start fail the test with Chromium's own message. The
	// viewport, unlike a window size, is exactly what screenshots show.
	if err := chromedp.Do(tabCtx, chromedp.EmulateViewport(1200, 800)); err != nil {
		tb.Fatalf("starting %s: %v", path, err)
	}
	console := chromedp.Console(tabCtx)
	dialogs := chromedp.Events(tabCtx, page.JavascriptDialogOpening)
	watchers.Go(func() {
		for m, err := range console {
			if err != nil {
				return
			}
			// A refused request's status is logged by the network stack; the
			// tests provoke refusals on purpose and check what the page says.
			if (m.Type == chromedp.ConsoleError && m.Source != "network") || m.IsException() {
				b.report("%s (%s:%d)", m, m.URL, m.Line+1)
			}
		}
	})
	watchers.Go(func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.report("a %s dialog opened: %q", ev.Type, ev.Message)
			// An open dialog blocks the page; dismiss it so the test goes on
			// to its own assertions.
			if _, err := chromedp.Call(tabCtx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}); err != nil {
				return
			}
		}
	})
	return b
}

func findBrowser() (string, error) {
	for _, name := range browserNames {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("no Chromium on PATH (looked for %s): install it, e.g. `apt-get install chromium` on Debian, as .ci/run does",
		strings.Join(browserNames, ", "))
}

func (b *Browser) report(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// Context is the tab's context, for what the helpers here do not cover,
// such as chromedp.Events.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs steps in the tab and fails the test on the first error, with
// what the page reported so far.
func (b *Browser) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.tb.Helper()
	BrowserRun(b, chromedp.Steps(steps...))
}

// BrowserRun runs a in b's tab and returns its value, failing the test on
// an error. It is a function because Go methods take no type parameters.
func BrowserRun[T any](b *Browser, a chromedp.Action[T]) T {
	b.tb.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.mu.Lock()
		problems := strings.Join(b.problems, "\n  ")
		b.mu.Unlock()
		b.tb.Fatalf("browser: %v\npage problems so far:\n  %s", err, problems)
	}
	return v
}
