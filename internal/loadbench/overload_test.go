package loadbench

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// maxPeakRSS bounds the overload gateway's peak resident memory on the
// test's data set: a gateway that queued the excess instead of shedding
// it would grow with every second of overload.
const maxPeakRSS = 512 << 20

// TestOverload drives `tenantgate serve` past its capacity and holds it to
// what the design promises under overload: every answer is 200, 429 or
// 503 (the last two with Retry-After), every 200 is the ground truth's,
// the excess is shed (some 503s) and the hot user limited (429s once
// more of its checks got past the in-flight bound than its limit allows),
// the answers that are given come within the gateway's request timeout,
// and memory stays bounded. The capacity is measured first, on the same
// machine, so the load is a multiple of what this machine serves. It runs
// with the index off, where every check is SpiceDB's work and the
// in-flight bound protects it, and on, where a check costs little more
// than its HTTP.
//
// In `make test` it drives twice the capacity for a few seconds; `make
// overload` runs it long, at two and five times, with the table for
// docs/benchmarks.md. TENANTGATE_OVERLOAD_INDEX (off, on or both),
// TENANTGATE_OVERLOAD_FACTORS (comma-separated),
// TENANTGATE_OVERLOAD_SECONDS (each factor) and
// TENANTGATE_OVERLOAD_STEP_SECONDS (each concurrency of the closed loop)
// choose.
func TestOverload(t *testing.T) {
	for _, index := range envIndexes(t, "TENANTGATE_OVERLOAD_INDEX", "off,on") {
		t.Run("index "+onOff(index), func(t *testing.T) { testOverload(t, index) })
	}
}

func testOverload(t *testing.T, index bool) {
	cfg := OverloadConfig{
		Sizes:    Sizes{Companies: 2000, Depth: 6, Users: 6000, Memberships: 15000, Seed: 1},
		Index:    index,
		Users:    2000,
		Factors:  envFloats(t, "TENANTGATE_OVERLOAD_FACTORS", "2"),
		Duration: envSeconds(t, "TENANTGATE_OVERLOAD_SECONDS", "5"),
		Step:     envSeconds(t, "TENANTGATE_OVERLOAD_STEP_SECONDS", "1"),
		LogDir:   t.TempDir(),
	}
	// Setting up takes well under a minute on 2 busy cores; the closed
	// loop's steps and each factor take their durations and the drain of
	// their last calls.
	timeout := 5*time.Minute + time.Duration(len(cfg.Factors))*(cfg.Duration+callTimeout) + 12*(cfg.Step+callTimeout)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var err error
	if cfg.TenantgateBin, err = testutil.BuildTenantgate(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := RunOverload(ctx, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteTable(t.Output()); err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.phases {
		t.Run(fmt.Sprintf("%g× capacity", p.factor), func(t *testing.T) {
			c := p.counts
			if c[outFailed] > 0 || c[outWrong] > 0 {
				t.Errorf("%d answers other than 200, 429 and 503 (or without Retry-After), %d wrong 200s; the first: %s",
					c[outFailed], c[outWrong], strings.Join(p.failures, "; "))
			}
			if c[outShed] == 0 {
				t.Errorf("no 503 at %g× the capacity: the in-flight bound of %d never filled, so the gateway was not overloaded", p.factor, rep.maxInFlight)
			}
			// The in-flight bound comes first: only what it lets through
			// reaches the hot user's limit. On a gateway so slow that little
			// does, a 429 is owed only once more got through than the
			// bucket (bursts of two seconds' worth) allows.
			admitted := hotShare * float64(c[outAnswered]+c[outLimited])
			allowance := rep.rateLimit * (2 + cfg.Duration.Seconds())
			if c[outLimited] == 0 && admitted > 2*allowance {
				t.Errorf("no 429 for the hot user, who asked %.0f%% of %g checks a second (about %.0f let through), over the limit of %g a second",
					hotShare*100, p.offered, admitted, rep.rateLimit)
			}
			if c[outAnswered] == 0 {
				t.Error("no 200 at all: shedding took everything")
			}
			// The gateway answers or gives up on a request within its
			// request timeout; a 200 later than that waited in a queue.
			if p99 := p.answered.percentile(99); p99 > gateway.DefaultRequestTimeout {
				t.Errorf("p99 of the 200s is %v, over the gateway's request timeout of %v", p99, gateway.DefaultRequestTimeout)
			}
			if p.peakRSS > maxPeakRSS {
				t.Errorf("the gateway's peak RSS is %s, over %s", bytesText(p.peakRSS), bytesText(maxPeakRSS))
			}
		})
	}
}

// envIndexes reads a comma-separated list of "on" and "off" from name, or
// def.
func envIndexes(t *testing.T, name, def string) []bool {
	t.Helper()
	v := cmp.Or(os.Getenv(name), def)
	var out []bool
	for field := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(field) {
		case "on":
			out = append(out, true)
		case "off":
			out = append(out, false)
		default:
			t.Fatalf("%s=%q: want on, off or both, comma-separated", name, v)
		}
	}
	return out
}

// envFloats reads a comma-separated list of positive numbers from name,
// or def.
func envFloats(t *testing.T, name, def string) []float64 {
	t.Helper()
	v := cmp.Or(os.Getenv(name), def)
	var out []float64
	for field := range strings.SplitSeq(v, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(field), 64)
		if err != nil || f <= 0 {
			t.Fatalf("%s=%q: want positive numbers, comma-separated", name, v)
		}
		out = append(out, f)
	}
	return out
}

// envSeconds reads a positive number of seconds from name, or def.
func envSeconds(t *testing.T, name, def string) time.Duration {
	t.Helper()
	v := cmp.Or(os.Getenv(name), def)
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || s <= 0 {
		t.Fatalf("%s=%q: want a positive number of seconds", name, v)
	}
	return time.Duration(s * float64(time.Second))
}

// TestOverloadClassify pins what the open loop counts an answer as: only
// a right 200, a 429 and a 503 that say when to come back are anything
// but a failure.
func TestOverloadClassify(t *testing.T) {
	c := Check{User: "u", Permission: "read", Company: "c", Want: true}
	refused := func(status int, retryAfter string) error {
		return &statusError{method: "POST", path: "/v1/check", status: status, retryAfter: retryAfter}
	}
	tests := []struct {
		name    string
		allowed bool
		err     error
		want    outcome
	}{
		{"a right 200", true, nil, outAnswered},
		{"a wrong 200", false, nil, outWrong},
		{"429 with Retry-After", false, refused(429, "1"), outLimited},
		{"503 with Retry-After", false, refused(503, "2"), outShed},
		{"503 without Retry-After", false, refused(503, ""), outFailed},
		{"429 with Retry-After 0", false, refused(429, "0"), outFailed},
		{"500", false, refused(500, "1"), outFailed},
		{"403", false, refused(403, ""), outFailed},
		{"no answer", false, context.DeadlineExceeded, outFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := classify(c, tc.allowed, tc.err)
			if got != tc.want {
				t.Errorf("classify = %d (%s), want %d", got, why, tc.want)
			}
			if (got == outFailed || got == outWrong) && why == "" {
				t.Error("a failure without a reason")
			}
		})
	}
}
