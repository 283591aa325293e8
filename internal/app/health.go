package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// dependencyProbeInterval is how often a process asks each dependency
// whether it answers, and how long it waits for the answer. The probes are
// the cheapest reads there are (milliseconds when all is well), so one a
// second costs nothing, and /readyz follows what callers meet within about
// a second; a dependency that takes a whole second over its cheapest read
// cannot answer requests in any useful time either.
const dependencyProbeInterval = time.Second

// dependencyProbe asks one dependency a question that only succeeds when
// it can answer requests.
type dependencyProbe struct {
	name  string
	check func(context.Context) error
	// up is the outcome of the last probe; false until the first.
	up atomic.Bool
	// known is whether any probe has run yet; only the probing goroutine
	// uses it.
	known bool
}

// dependencyHealth keeps the outcome of the last probe of each dependency
// a process cannot answer without, for /readyz and the
// tenantgate_dependency_up gauge. Answers never wait for it: they fail by
// themselves, with a 503, when a dependency does not answer them.
type dependencyHealth struct {
	probes []*dependencyProbe
	gauge  *prometheus.GaugeVec
	logger *slog.Logger
}

// newDependencyHealth registers the gauge with reg, with a series for each
// probe at 0 until its first probe succeeds.
func newDependencyHealth(reg prometheus.Registerer, logger *slog.Logger, probes ...*dependencyProbe) (*dependencyHealth, error) {
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenantgate_dependency_up",
		Help: "1 when this process's last probe of the dependency (SpiceDB: a fully consistent check; Postgres: a ping; each every second with a one-second deadline) succeeded. 0 means it did not: the process reports not ready, and answers that need the dependency are 503.",
	}, []string{"dependency"})
	if err := reg.Register(gauge); err != nil {
		return nil, fmt.Errorf("dependency health: %w", err)
	}
	for _, p := range probes {
		gauge.WithLabelValues(p.name).Set(0)
	}
	return &dependencyHealth{probes: probes, gauge: gauge, logger: logger}, nil
}

// spiceDBProbe asks SpiceDB for its current revision, a fully consistent
// check of a relationship nobody holds: it needs SpiceDB and its datastore.
func spiceDBProbe(sdb *spiceDB) *dependencyProbe {
	return &dependencyProbe{name: "spicedb", check: func(ctx context.Context) error {
		_, err := sdb.HeadToken(ctx)
		return err
	}}
}

// postgresProbe pings the application database through the pool the
// process answers from.
func postgresProbe(ping func(context.Context) error) *dependencyProbe {
	return &dependencyProbe{name: "postgres", check: ping}
}

// Run probes every dependency once a dependencyProbeInterval, each on a
// goroutine of its own so one that hangs does not hold the others' news,
// until ctx ends.
func (h *dependencyHealth) Run(ctx context.Context) {
	var probing sync.WaitGroup
	for _, p := range h.probes {
		probing.Go(func() { h.follow(ctx, p) })
	}
	probing.Wait()
}

func (h *dependencyHealth) follow(ctx context.Context, p *dependencyProbe) {
	tick := time.NewTicker(dependencyProbeInterval)
	defer tick.Stop()
	for {
		h.probe(ctx, p)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe asks p once and records the outcome, logging only when it differs
// from the last one: a dependency down for an hour is one warning, not
// 3,600.
func (h *dependencyHealth) probe(ctx context.Context, p *dependencyProbe) {
	pctx, cancel := context.WithTimeout(ctx, dependencyProbeInterval)
	err := p.check(pctx)
	cancel()
	if ctx.Err() != nil {
		return // stopping: the failure is ours, not the dependency's
	}
	up := err == nil
	switch was := p.up.Swap(up); {
	case !up && (was || !p.known):
		h.logger.Warn("dependency does not answer; not ready until it does", "dependency", p.name, "error", err)
	case up && !was && p.known:
		h.logger.Info("dependency answers again", "dependency", p.name)
	}
	p.known = true
	value := 0.0
	if up {
		value = 1
	}
	h.gauge.WithLabelValues(p.name).Set(value)
}

// Up reports whether every dependency answered its last probe.
func (h *dependencyHealth) Up() bool {
	for _, p := range h.probes {
		if !p.up.Load() {
			return false
		}
	}
	return true
}

// readyWith is ready and Up: what /readyz reports.
func (h *dependencyHealth) readyWith(ready func() bool) func() bool {
	return func() bool { return ready() && h.Up() }
}
