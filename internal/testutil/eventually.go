package testutil

import (
	"testing"
	"time"
)

// pollInterval is how often Eventually asks again.
const pollInterval = 20 * time.Millisecond

// Eventually polls cond until it returns nil, and fails tb with cond's last
// error once timeout has passed. Asynchronous parts (the sync, a process
// starting, a cache refreshing) are waited for by a condition, never by a
// sleep; the timeout says how late is too late.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}
