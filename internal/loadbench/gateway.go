package loadbench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// remoteBackend is the production topology's SpiceDB: `spicedb serve` on a
// database of the cluster, kept in step by `tenantgate sync`. The spicedb
// system and the remote gateways each ask a `spicedb serve` of their own
// on the same datastore (see freshSpiceDB).
type remoteBackend struct {
	datastoreURL string
	sdb          *spiceDBServer // the one the sync writes to
	sync         *child
}

// remoteSlot is the sync's persistent slot, which the remote gateways
// follow the checkpoints of.
const remoteSlot = "bench_remote"

func (r *run) ensureRemote(ctx context.Context) (*remoteBackend, error) {
	if r.remote != nil {
		return r.remote, nil
	}
	done := r.step(ctx, "starting spicedb serve and tenantgate sync")
	b := &remoteBackend{datastoreURL: r.pg.URL("spicedb_remote")}
	if err := r.pg.CreateDatabase(ctx, "spicedb_remote", ""); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := migrateSpiceDB(ctx, r.cfg.SpiceDBBin, b.datastoreURL); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	sdb, err := startSpiceDB(ctx, "spicedb-sync", r.cfg.SpiceDBBin, b.datastoreURL, r.logDir)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	b.sdb, r.remote = sdb, b
	if err := migrateTenantgate(ctx, r.cfg.TenantgateBin, "--spicedb-endpoint="+sdb.endpoint, "--spicedb-token="+sdb.token, "--spicedb-insecure"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	metricsAddr, metricsBase, err := loopback()
	if err != nil {
		return nil, fmt.Errorf("bench: sync: %w", err)
	}
	b.sync, err = startChild("sync", r.logDir, r.cfg.TenantgateBin, "sync",
		"--database-url="+r.appURL, "--spicedb-endpoint="+sdb.endpoint, "--spicedb-token="+sdb.token,
		"--spicedb-insecure", "--metrics-addr="+metricsAddr, "--sync-slot="+remoteSlot, "--log-format=json")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := b.sync.awaitHTTP(ctx, metricsBase+"/readyz"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := analyze(ctx, b.datastoreURL); err != nil {
		return nil, fmt.Errorf("bench: spicedb datastore: %w", err)
	}
	done()
	return b, nil
}

// freshSpiceDB starts another `spicedb serve` on the remote datastore for
// the system called name. SpiceDB caches what it computed per revision,
// and without writes in between every system would ask the same questions
// at the same revision: whoever came later would be measured on the
// answers cached for whoever came first.
func (r *run) freshSpiceDB(ctx context.Context, name string) (*spiceDBServer, error) {
	b, err := r.ensureRemote(ctx)
	if err != nil {
		return nil, err
	}
	sdb, err := startSpiceDB(ctx, "spicedb-"+slug(name), r.cfg.SpiceDBBin, b.datastoreURL, r.logDir)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return sdb, nil
}

func (r *run) stopRemote(ctx context.Context) error {
	b := r.remote
	if b == nil {
		return nil
	}
	r.remote = nil
	var errs []error
	if b.sync != nil {
		errs = append(errs, b.sync.stop(ctx), dropSlot(ctx, r.db, remoteSlot))
	}
	return errors.Join(append(errs, b.sdb.stop(ctx))...)
}

// variant is one `tenantgate serve` configuration.
type variant struct {
	system System
	index  bool
	args   []string
	// slot is a persistent replication slot to drop once it is stopped.
	slot string
	// spicedb is a server of the gateway's own, stopped with it.
	spicedb *spiceDBServer
	// datastoreURL is an embedded SpiceDB's own database.
	datastoreURL string
}

func (v variant) name() string {
	if v.index {
		return string(v.system) + " index=on"
	}
	return string(v.system) + " index=off"
}

// slug is a system's name as part of a file name: "embedded-pg index=on"
// is "embedded-pg-index-on".
func slug(name string) string { return strings.ReplaceAll(name, " index=", "-index-") }

// variant sets up what a gateway of system needs besides itself.
func (r *run) variant(ctx context.Context, system System, index bool) (variant, error) {
	v := variant{system: system, index: index}
	switch system {
	case SystemRemote:
		sdb, err := r.freshSpiceDB(ctx, v.name())
		if err != nil {
			return v, err
		}
		v.spicedb = sdb
		v.args = []string{"--spicedb-endpoint=" + sdb.endpoint, "--spicedb-token=" + sdb.token, "--spicedb-insecure", "--sync-slot=" + remoteSlot}
	case SystemEmbeddedPG:
		// Each gateway gets a datastore and a slot of its own, so it starts
		// from an empty SpiceDB and takes the snapshot like the others.
		suffix := strings.ReplaceAll(slug(v.name()), "-", "_")
		if err := r.pg.CreateDatabase(ctx, "spicedb_"+suffix, ""); err != nil {
			return v, fmt.Errorf("bench: %w", err)
		}
		v.slot = "bench_" + suffix
		v.datastoreURL = r.pg.URL("spicedb_" + suffix)
		if err := migrateTenantgate(ctx, r.cfg.TenantgateBin, "--spicedb-datastore-url="+v.datastoreURL); err != nil {
			return v, fmt.Errorf("bench: %w", err)
		}
		v.args = []string{"--spicedb-datastore-url=" + v.datastoreURL, "--sync-slot=" + v.slot}
	}
	return v, nil
}

// measureGateway starts `tenantgate serve` as v says, waits until it is
// ready (and its index loaded), and measures checks, bulk checks, lists and,
// with the index on, the lag.
func (r *run) measureGateway(ctx context.Context, v variant) (err error) {
	defer func() { err = errors.Join(err, r.release(context.WithoutCancel(ctx), v)) }()
	name := v.name()
	// The bench measures capacity: its few users ask far faster than the
	// per-user default allows, which would measure 429s.
	args := append([]string{"--index=" + strconv.FormatBool(v.index), "--rate-limit-user=0", "--max-in-flight=0"}, v.args...)
	done := r.step(ctx, "starting tenantgate serve", "system", name)
	proc, base, err := r.startServe(ctx, name, args...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proc.stop(context.WithoutCancel(ctx))) }()
	if v.datastoreURL != "" {
		if err := analyze(ctx, v.datastoreURL); err != nil {
			return fmt.Errorf("bench: %s datastore: %w", name, err)
		}
	}
	if v.index {
		if err := r.awaitIndex(ctx, base+"/metrics"); err != nil {
			return err
		}
	}
	done()
	return r.gatewaySuite(ctx, name, v.index, base, proc.pid())
}

// startServe starts `tenantgate serve` called name on the run's database,
// key set and service token, with args on top, and returns it and its base
// URL once it answers /readyz.
func (r *run) startServe(ctx context.Context, name string, args ...string) (*child, string, error) {
	addr, base, err := loopback()
	if err != nil {
		return nil, "", fmt.Errorf("bench: %s: %w", name, err)
	}
	args = append([]string{"serve",
		"--database-url=" + r.appURL, "--http-addr=" + addr, "--jwks-file=" + r.jwksFile,
		"--issuer=" + benchIssuer, "--audience=" + benchIssuer, "--service-token=" + r.serviceToken,
		"--log-format=json", "--shutdown-timeout=2s",
	}, args...)
	proc, err := startChild("serve-"+slug(name), r.logDir, r.cfg.TenantgateBin, args...)
	if err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	if err := proc.awaitHTTP(ctx, base+"/readyz"); err != nil {
		return nil, "", errors.Join(fmt.Errorf("bench: %w", err), proc.stop(context.WithoutCancel(ctx)))
	}
	return proc, base, nil
}

// release stops and removes what v set up besides the gateway.
func (r *run) release(ctx context.Context, v variant) error {
	var errs []error
	if v.slot != "" {
		errs = append(errs, dropSlot(ctx, r.db, v.slot))
	}
	if v.spicedb != nil {
		errs = append(errs, v.spicedb.stop(ctx))
	}
	return errors.Join(errs...)
}

// indexMetrics are the index's gauges, absent while it is not wired in.
var indexMetrics = []string{"tenantgate_index_relationships", "tenantgate_index_load_seconds", "tenantgate_index_bytes"}

// awaitIndex polls the gateway's metrics until its index holds every
// relationship: reads fall back to SpiceDB while it loads, which is not
// what an index=on row means to measure. A gateway without the metrics has
// no index to wait for; one that never gets there is measured anyway.
func (r *run) awaitIndex(ctx context.Context, metricsURL string) error {
	ctx, cancel := context.WithTimeout(ctx, indexLoadTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := ScrapeMetrics(ctx, metricsURL, indexMetrics...)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		held, ok := m["tenantgate_index_relationships"]
		switch {
		case !ok:
			r.log.WarnContext(ctx, "bench: the gateway has no index metrics; index=on runs like index=off")
			return nil
		case int(held) == r.rels:
			return nil
		}
		select {
		case <-ctx.Done():
			r.log.WarnContext(ctx, "bench: the index does not hold every relationship; measuring anyway", "holds", held, "want", r.rels)
			return nil
		case <-tick.C:
		}
	}
}

func (r *run) gatewaySuite(ctx context.Context, name string, index bool, base string, pid int) error {
	api := newAPIClient(base, r.cfg.Clients, r.tokens)
	defer api.close()
	check, err := r.checks(ctx, name, api.check)
	if err != nil {
		return err
	}
	bulk, err := r.bulk(ctx, name, api.checkBulk)
	if err != nil {
		return err
	}
	lists, err := r.lists(ctx, name, api.list)
	if err != nil {
		return err
	}
	check.notes = append(check.notes, memory(pid))
	if index {
		notes, err := indexNotes(ctx, base+"/metrics")
		if err != nil {
			return err
		}
		check.notes = append(check.notes, notes...)
	}
	r.results = append(append(r.results, check, bulk), lists...)
	if index && r.cfg.LagRate > 0 && r.cfg.LagDuration > 0 {
		return r.measureLag(ctx, name, api)
	}
	return nil
}

// indexNotes describe the gateway's index as its metrics have it.
func indexNotes(ctx context.Context, metricsURL string) ([]string, error) {
	m, err := ScrapeMetrics(ctx, metricsURL, indexMetrics...)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var notes []string
	if n, ok := m["tenantgate_index_relationships"]; ok {
		notes = append(notes, fmt.Sprintf("index: %s relationships", thousands(int64(n))))
	}
	if s, ok := m["tenantgate_index_load_seconds"]; ok {
		notes = append(notes, "loaded in "+durationText(time.Duration(s*float64(time.Second))))
	}
	if b, ok := m["tenantgate_index_bytes"]; ok {
		notes = append(notes, "about "+bytesText(int64(b))+" by its own estimate")
	}
	return notes, nil
}

func (r *run) measureLag(ctx context.Context, name string, api *apiClient) error {
	writer, err := openPool(ctx, r.appURL, 1, true)
	if err != nil {
		return fmt.Errorf("bench: lag: %w", err)
	}
	defer writer.Close()
	done := r.step(ctx, "commit-to-visible lag", "system", name, "rate", r.cfg.LagRate, "for", r.cfg.LagDuration)
	s, err := measureLag(ctx, writer, api, r.serviceToken, r.data.Leaves(), r.cfg.LagRate, r.cfg.LagDuration)
	if err != nil {
		return fmt.Errorf("bench: %s: %w", name, err)
	}
	done()
	t := timing{calls: len(s.lags), latencies: s.lags}
	r.results = append(r.results, result{system: name, kind: kindLag, measure: fmt.Sprintf("lag at %d changes/s", r.cfg.LagRate),
		rate: float64(s.changes) / s.writing.Seconds(), p50: t.percentile(50), p99: t.percentile(99), max: t.max(),
		notes: []string{fmt.Sprintf("%s changes committed and seen, %d started over %s late; goal p99 < 250 ms", thousands(int64(s.changes)), s.late, lateBy)}})
	return nil
}
