package testutil

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// readyzTimeout bounds one readiness request, so that a process that
// accepts connections but never answers cannot use up a whole wait.
const readyzTimeout = 2 * time.Second

// Readyz is the status of GET /readyz on addr (host:port), or 0 when it
// does not answer.
func Readyz(addr string) int {
	resp, err := (&http.Client{Timeout: readyzTimeout}).Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// AwaitReadyz polls addr's /readyz until it answers want, and fails tb
// once bound has passed.
func AwaitReadyz(tb testing.TB, addr string, want int, bound time.Duration) {
	tb.Helper()
	Eventually(tb, bound, func() error {
		if got := Readyz(addr); got != want {
			return fmt.Errorf("%s/readyz = %d, want %d", addr, got, want)
		}
		return nil
	})
}
