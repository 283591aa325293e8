// Package servetest runs `tenantgate serve` in a test's own process. It is
// apart from testutil because it imports internal/app, which imports
// packages whose own tests use testutil.
package servetest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// Start runs `tenantgate serve` with cfg in this process, on
// cfg.Listener (a fresh loopback port when nil), and returns its base URL
// once /readyz answers 200. Its warnings go to the test log; it stops, and
// is waited for, when the test ends. A serve that exits before it is ready
// fails the test.
func Start(tb testing.TB, cfg app.Config) string {
	tb.Helper()
	if cfg.Listener == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Listener = ln
	}
	base := "http://" + cfg.Listener.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- app.Serve(ctx, cfg, logger) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("serve returned %v", err)
			}
		case <-time.After(time.Minute):
			tb.Error("serve did not stop within a minute")
		}
	})
	hc := &http.Client{Timeout: 5 * time.Second}
	// Generous: the snapshot of a large seed (scaletest's 200,000
	// companies) on a busy machine takes minutes.
	testutil.Eventually(tb, 5*time.Minute, func() error {
		select {
		case err := <-done:
			done <- err // for the cleanup
			tb.Fatalf("serve exited before it was ready: %v", err)
		default:
		}
		resp, err := hc.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errNotReady
		}
		return nil
	})
	return base
}

var errNotReady = errors.New("readyz is not 200 yet")

// tbWriter sends a log to the test's log, which shows it only for a failed
// (or verbose) test.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}
