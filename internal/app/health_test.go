package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// fakeDependency answers probes with err, and refuses a probe without a
// deadline.
type fakeDependency struct{ err error }

func (f *fakeDependency) check(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("probed without a deadline")
	}
	return f.err
}

var errDown = errors.New("connection refused")

// TestDependencyHealth follows two dependencies through outages, one
// probe round at a time: readiness and the gauge follow the last probe,
// and the log says each change once.
func TestDependencyHealth(t *testing.T) {
	spice, pg := &fakeDependency{}, &fakeDependency{}
	probes := []*dependencyProbe{{name: "spicedb", check: spice.check}, {name: "postgres", check: pg.check}}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	h, err := newDependencyHealth(reg, slog.New(slog.NewTextHandler(&logs, nil)), probes...)
	if err != nil {
		t.Fatal(err)
	}
	if h.Up() {
		t.Error("up before any probe")
	}
	steps := []struct {
		name              string
		spicedb, postgres error
		up                bool
		logged            []string // the new log lines, in order, by what they contain
	}{
		{"spicedb down from the start", errDown, nil, false, []string{`level=WARN msg="dependency does not answer; not ready until it does" dependency=spicedb error="connection refused"`}},
		{"still down: no new line", errDown, nil, false, nil},
		{"spicedb back", nil, nil, true, []string{`level=INFO msg="dependency answers again" dependency=spicedb`}},
		{"both up: no line", nil, nil, true, nil},
		{"postgres down", nil, errDown, false, []string{"dependency=postgres"}},
		{"both down", errDown, errDown, false, []string{"dependency=spicedb"}},
		{"both back", nil, nil, true, []string{"answers again\" dependency=spicedb", "answers again\" dependency=postgres"}},
	}
	for _, step := range steps {
		spice.err, pg.err = step.spicedb, step.postgres
		logs.Reset()
		for _, p := range probes {
			h.probe(t.Context(), p)
		}
		if got := h.Up(); got != step.up {
			t.Errorf("%s: Up() = %v, want %v", step.name, got, step.up)
		}
		for dep, err := range map[string]error{"spicedb": step.spicedb, "postgres": step.postgres} {
			want := 1.0
			if err != nil {
				want = 0
			}
			if got := testutil.MetricValue(t, reg, "tenantgate_dependency_up", "dependency", dep); got != want {
				t.Errorf("%s: tenantgate_dependency_up{dependency=%q} = %v, want %v", step.name, dep, got, want)
			}
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if logs.Len() == 0 {
			lines = nil
		}
		if len(lines) != len(step.logged) {
			t.Errorf("%s: logged %q, want %d lines with %q", step.name, lines, len(step.logged), step.logged)
			continue
		}
		for i, want := range step.logged {
			if !strings.Contains(lines[i], want) {
				t.Errorf("%s: line %d is %q, want it to hold %q", step.name, i, lines[i], want)
			}
		}
	}
}

func TestDependencyHealthReadyWith(t *testing.T) {
	dep := &fakeDependency{}
	h, err := newDependencyHealth(prometheus.NewRegistry(), slog.New(slog.DiscardHandler), &dependencyProbe{name: "spicedb", check: dep.check})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.Run(ctx)
	}()
	// The first probe runs at once.
	testutil.Eventually(t, 5*time.Second, func() error {
		if !h.readyWith(func() bool { return true })() {
			return errors.New("not ready with the dependency up")
		}
		return nil
	})
	if h.readyWith(func() bool { return false })() {
		t.Error("ready while the rest of the process is not")
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}
