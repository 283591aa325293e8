package loadbench

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestBenchOneWrongAnswerFailsTheRun runs the bench's own machinery on a
// tiny data set (real PostgreSQL, the floor and an embedded gateway as
// processes) with one expectation turned wrong, and requires the run to
// stop with an error that names the system, the user, the company and the
// permission, whichever way the answer came: a single check over HTTP or
// SQL, a bulk call, a list.
func TestBenchOneWrongAnswerFailsTheRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	bin, err := testutil.BuildTenantgate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &run{log: slog.New(slog.NewTextHandler(t.Output(), nil)), cfg: Config{
		Systems: []System{SystemFloor, SystemSQL, SystemEmbedded},
		Sizes:   Sizes{Companies: 60, Depth: 4, Users: 100, Memberships: 300, ListSizes: []int{10}, Seed: 3},
		Checks:  100, CheckUsers: 30, Clients: 4, BulkSize: 25, ListRepeats: 2,
		ChartPath: filepath.Join(dir, "chart.svg"), LogDir: dir, TenantgateBin: bin,
	}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := r.close(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := r.prepare(ctx); err != nil {
		t.Fatal(err)
	}

	wrongCheck := func(t *testing.T, system System, c *Check) {
		t.Helper()
		c.Want = !c.Want
		defer func() { c.Want = !c.Want }()
		err := r.measure(ctx, system)
		var wrong *WrongAnswerError
		if !errors.As(err, &wrong) || wrong.Check != *c {
			t.Fatalf("%s with one wrong expectation (%s): error %v, want a WrongAnswerError about it", system, c, err)
		}
		for _, want := range []string{wrong.System, c.User, c.Company, string(c.Permission)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		t.Log(err)
	}
	t.Run("single check, floor over HTTP", func(t *testing.T) { wrongCheck(t, SystemFloor, &r.work.checks[len(r.work.checks)/2]) })
	t.Run("single check, SQL", func(t *testing.T) { wrongCheck(t, SystemSQL, &r.work.checks[7]) })
	t.Run("warm-up check", func(t *testing.T) { wrongCheck(t, SystemSQL, &r.work.warm[0]) })
	t.Run("bulk check, gateway", func(t *testing.T) { wrongCheck(t, SystemEmbedded, &r.work.batches[1][3]) })
	t.Run("list, SQL", func(t *testing.T) {
		job := r.work.lists[0]
		truth := r.truth
		defer func() { r.truth = truth }()
		// A ground truth without one of the list user's memberships.
		var fewer []authz.Membership
		dropped := false
		for _, m := range r.data.Memberships {
			if !dropped && m.UserID == job.User {
				dropped = true
				continue
			}
			fewer = append(fewer, m)
		}
		r.truth = NewTruth(r.data.Companies, fewer)
		err := r.measure(ctx, SystemSQL)
		var wrong *WrongListError
		if !errors.As(err, &wrong) || wrong.User != job.User || wrong.System != string(SystemSQL) {
			t.Fatalf("SQL list against a wrong ground truth: error %v, want a WrongListError about %s", err, job.User)
		}
		t.Log(err)
	})
}
