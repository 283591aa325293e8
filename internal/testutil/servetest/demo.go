package servetest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// Demo runs `tenantgate demo` in this process, as a user would, with
// configure's changes, on a database of its own. It returns the base URL
// and what the demo printed once it has printed its examples; the demo
// stops, and is waited for, when the test ends.
func Demo(tb testing.TB, configure func(*app.Config)) (base, printed string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = testutil.NewEmptyTestDatabase(tb)
	cfg.Listener = ln
	configure(&cfg)
	var out testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Demo(ctx, cfg, slog.New(slog.DiscardHandler), &out) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("demo returned %v", err)
		}
	})
	testutil.Eventually(tb, 2*time.Minute, func() error {
		select {
		case err := <-done:
			done <- err // for the cleanup
			tb.Fatalf("demo ended early: %v\n%s", err, out.String())
		default:
		}
		if !strings.Contains(out.String(), "Press Ctrl-C to stop") {
			return errors.New("the demo has not printed its examples yet")
		}
		return nil
	})
	return "http://" + ln.Addr().String(), out.String()
}
