package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// envInt reads a test size from the environment, so a longer soak needs no
// code change (`make soak`).
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// remoteTopology is the production shape of the sync (testutil.Topology)
// on a PostgreSQL cluster of the test's own, which holds SpiceDB's
// datastore too, so it can be restarted.
type remoteTopology struct {
	*testutil.Topology
	t  *testing.T
	pg *devenv.Postgres
}

func startRemoteTopology(t *testing.T, ctx context.Context, seedSQL string) *remoteTopology {
	t.Helper()
	pg := testutil.NewTestPostgres(t)
	testutil.NewAppDatabase(t, pg)
	if err := pg.CreateDatabase(ctx, "spicedb", ""); err != nil {
		t.Fatal(err)
	}
	topo := testutil.StartTopology(t, testutil.TopologyOptions{AppURL: pg.URL("app"), SpiceDBDatastoreURL: pg.URL("spicedb"), Seed: seedSQL})
	return &remoteTopology{Topology: topo, t: t, pg: pg}
}

// startSync starts a `tenantgate sync` process serving /readyz on
// metricsAddr; it is stopped when the test ends.
func (r *remoteTopology) startSync(name, metricsAddr string) *testutil.Process {
	r.t.Helper()
	return testutil.StartTenantgate(r.t, name, append([]string{"sync", "--metrics-addr", metricsAddr, "--log-format", "json"}, r.RemoteFlags()...)...)
}

// converged waits until SpiceDB holds exactly what Postgres derives; logs
// tells what the sync was doing when it does not.
func (r *remoteTopology) converged(bound time.Duration, logs func() string) int {
	r.t.Helper()
	client, err := spicedb.Dial(spicedb.RemoteConfig{Endpoint: r.SpiceDB.Endpoint(), Token: r.SpiceDB.Token(), Insecure: true})
	if err != nil {
		r.t.Fatal(err)
	}
	defer client.Close()
	defer func() {
		if r.t.Failed() {
			r.t.Logf("sync log tail:\n%s", logs())
		}
	}()
	return testutil.AwaitConverged(r.t, bound, r.DB, client)
}

// TestCrashSafeSync runs `tenantgate sync` as a process against a real
// `spicedb serve` on a Postgres datastore, applies a random workload, and
// meanwhile SIGKILLs the sync at random points, restarts PostgreSQL once and
// stops SpiceDB for a few seconds once. At the end SpiceDB must hold exactly
// the relationships Postgres derives.
func TestCrashSafeSync(t *testing.T) {
	changes := envInt(t, "TENANTGATE_CRASH_CHANGES", 20000)
	kills := envInt(t, "TENANTGATE_CRASH_KILLS", 20)
	// Bounded by go test's -timeout, so a soak only needs a larger one.
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(diffSeed(t), 2))

	m, seed := randomData(rng)
	topo := startRemoteTopology(t, ctx, seed)
	db, pg, sdb := topo.DB, topo.pg, topo.SpiceDB
	startSync := func() *testutil.Process { return topo.startSync("sync", "127.0.0.1:0") }
	syncProc := startSync()
	// A gateway lives through all of it, its permission index following
	// SpiceDB's Watch across the outage.
	gw := topo.startGateway()

	chaos := rand.New(rand.NewPCG(rng.Uint64(), 3))
	// The workload pauses while Postgres restarts, so no statement's outcome
	// is left unknown.
	var pause sync.RWMutex
	var applied atomic.Int64
	workloadDone := make(chan error, 1)
	go func() {
		for i := range changes {
			sql := randomUpdate(rng, m)
			pause.RLock()
			_, err := db.Exec(ctx, sql)
			pause.RUnlock()
			if err != nil {
				workloadDone <- fmt.Errorf("change %d %q: %w", i, sql, err)
				return
			}
			applied.Add(1)
		}
		workloadDone <- nil
	}()

	for k := range kills {
		time.Sleep(time.Duration(100+chaos.IntN(700)) * time.Millisecond) // a random point in the stream, not a synchronisation
		if err := syncProc.Kill(); err != nil {
			t.Fatal(err)
		}
		switch k {
		case kills / 3:
			pause.Lock()
			err := pg.Restart(ctx)
			db.Reset() // its connections died with the server
			pause.Unlock()
			if err != nil {
				t.Fatalf("restart postgres: %v", err)
			}
			t.Logf("postgres restarted after %d changes", applied.Load())
		case 2 * kills / 3:
			if err := sdb.Kill(); err != nil {
				t.Fatal(err)
			}
			syncProc = startSync()
			time.Sleep(3 * time.Second) // the outage itself
			if err := sdb.Start(ctx); err != nil {
				t.Fatalf("restart spicedb: %v", err)
			}
			t.Logf("spicedb was down for 3s after %d changes", applied.Load())
			continue
		}
		syncProc = startSync()
	}
	t.Logf("%d kills done after %d changes", kills, applied.Load())
	if err := <-workloadDone; err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	n := topo.converged(3*time.Minute, syncProc.Output)
	t.Logf("%d changes, %d kills: SpiceDB equals Postgres (%d relationships) %v after the last kill",
		changes, kills, n, time.Since(started).Round(time.Millisecond))
	gw.compareThroughIndex(t, m)
}

// startGateway starts a `tenantgate serve` process on the topology's
// SpiceDB, with every index answer verified; its stack speaks to it.
func (r *remoteTopology) startGateway() *stack {
	r.t.Helper()
	s, jwksFile := newStack(r.t, r.AppURL, nil)
	addr := freeAddr(r.t)
	testutil.StartTenantgate(r.t, "serve", s.serveArgs(addr, jwksFile, r.RemoteFlags()...)...)
	s.baseURLs = []string{"http://" + addr}
	r.t.Cleanup(s.checkIndexAgreed)
	return s
}

// compareThroughIndex waits for the gateway to reflect the last change,
// compares its every answer with the model, and requires that its index,
// not SpiceDB, gave them.
func (s *stack) compareThroughIndex(t *testing.T, m *model) {
	t.Helper()
	s.waitReady(func() error { return nil })
	before, err := metric(s.baseURL(), `tenantgate_index_reads_total{answered_by="index",reason="fresh"}`)
	if err != nil {
		t.Fatal(err)
	}
	s.waitForMarker(t, m.companies()[0], 1)
	s.compare(t, m)
	after, err := metric(s.baseURL(), `tenantgate_index_reads_total{answered_by="index",reason="fresh"}`)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("the index answered none of the comparison's reads (%v before, %v after)", before, after)
	}
}

// TestCrashSafeEmbeddedGateway SIGKILLs a `tenantgate serve` running
// SpiceDB embedded on a Postgres datastore (the sync and the permission
// index in the same process) at random points of a random workload and
// starts it again; at the end its answers, from the index reloaded after
// the last kill and following Watch since, must equal the rows.
func TestCrashSafeEmbeddedGateway(t *testing.T) {
	changes := envInt(t, "TENANTGATE_CRASH_CHANGES", 20000) / 4
	kills := max(envInt(t, "TENANTGATE_CRASH_KILLS", 20)/4, 1)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(diffSeed(t), 5))
	m, seed := randomData(rng)
	topo := startRemoteTopology(t, ctx, seed)
	// The remote SpiceDB of the topology is not used: this gateway runs
	// its own on the topology's spicedb database.
	if err := topo.SpiceDB.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, jwksFile := newStack(t, topo.AppURL, nil)
	addr := freeAddr(t)
	s.baseURLs = []string{"http://" + addr}
	start := func(n int) *testutil.Process {
		return testutil.StartTenantgate(t, fmt.Sprintf("serve-%d", n),
			s.serveArgs(addr, jwksFile, "--database-url", topo.AppURL, "--spicedb-datastore-url", topo.pg.URL("spicedb"))...)
	}
	gw := start(0)

	workloadDone := make(chan error, 1)
	go func() {
		for i := range changes {
			if _, err := topo.DB.Exec(ctx, randomUpdate(rng, m)); err != nil {
				workloadDone <- fmt.Errorf("change %d: %w", i, err)
				return
			}
		}
		workloadDone <- nil
	}()
	chaos := rand.New(rand.NewPCG(rng.Uint64(), 6))
	for k := range kills {
		time.Sleep(time.Duration(500+chaos.IntN(1500)) * time.Millisecond) // a random point in the workload, not a synchronisation
		if err := gw.Kill(); err != nil {
			t.Fatal(err)
		}
		gw = start(k + 1)
	}
	if err := <-workloadDone; err != nil {
		t.Fatal(err)
	}
	s.waitReady(func() error {
		select {
		case <-gw.Done():
			return fmt.Errorf("serve exited: %s", gw.Output())
		default:
			return nil
		}
	})
	s.compareThroughIndex(t, m)
	s.checkIndexAgreed()
}

// TestStandbyTakesOverAfterSIGKILL runs two sync processes on one slot: one
// is active, the other waits; SIGKILL the active one and the standby must
// take over within seconds and carry on exactly.
func TestStandbyTakesOverAfterSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(diffSeed(t), 4))
	m, seed := randomData(rng)
	topo := startRemoteTopology(t, ctx, seed)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := topo.startSync("a", addrA)
	testutil.AwaitReadyz(t, addrA, http.StatusOK, time.Minute)
	b := topo.startSync("b", addrB)
	testutil.AwaitReadyz(t, addrB, http.StatusServiceUnavailable, time.Minute)
	for range 200 {
		if _, err := topo.DB.Exec(ctx, randomUpdate(rng, m)); err != nil {
			t.Fatal(err)
		}
	}
	topo.converged(time.Minute, a.Output)
	if code := testutil.Readyz(addrB); code != http.StatusServiceUnavailable {
		t.Fatalf("standby /readyz = %d while the first sync is active; two active syncs on one slot", code)
	}

	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for range 200 {
		if _, err := topo.DB.Exec(ctx, randomUpdate(rng, m)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.AwaitReadyz(t, addrB, http.StatusOK, time.Minute)
	t.Logf("standby ready %v after the active sync was killed", time.Since(killed).Round(time.Millisecond))
	topo.converged(time.Minute, b.Output)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
