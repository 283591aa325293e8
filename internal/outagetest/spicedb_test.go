package outagetest

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestSpiceDBStopped kills `spicedb serve` under a sync and two gateways,
// one asking SpiceDB for every answer and one answering from its
// permission index, changes a membership while SpiceDB is down, and starts
// SpiceDB again on the same port and datastore.
func TestSpiceDBStopped(t *testing.T) {
	t.Parallel()
	topo := testutil.StartTopology(t, testutil.TopologyOptions{Seed: seed})
	syncProc, syncAddr := startSync(t, topo)
	iss := newIssuer(t)
	keys := iss.fileFlags()
	direct := startGateway(t, "direct", append(append(topo.RemoteFlags(), keys...), "--index=false")...)
	indexed := startGateway(t, "indexed", append(append(topo.RemoteFlags(), keys...), "--max-staleness", staleness.String())...)
	gateways := []*gateway{direct, indexed}
	for _, g := range gateways {
		if err := g.decides(iss, readersBefore); err != nil {
			t.Fatal(err)
		}
	}

	if err := topo.SpiceDB.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not ready at once, before anything has changed: nothing but the
	// probe can tell yet.
	for _, g := range gateways {
		testutil.Eventually(t, 10*time.Second, func() error { return g.ready(http.StatusServiceUnavailable) })
	}
	testutil.AwaitReadyz(t, syncAddr, http.StatusServiceUnavailable, 10*time.Second)
	alice := iss.token("alice")
	if err := direct.failsClosed(alice, reads...); err != nil {
		t.Error(err)
	}

	// Management is decided in Postgres and goes on; the application
	// writes rows itself too.
	if a, err := direct.ask(grantCarolRequest, alice); err != nil || a.status != http.StatusOK {
		t.Errorf("grant carol with SpiceDB down: %v, %v; want 200", a, err)
	}
	exec(t, topo, revokeBob)
	// The index knows nothing newer, so it answers until the change has
	// waited past --max-staleness, then not at all.
	testutil.Eventually(t, staleness+10*time.Second, func() error {
		return indexed.failsClosed(iss.token("bob"), reads...)
	})
	for _, user := range []string{"alice", "bob", "carol"} {
		for _, g := range gateways {
			if err := g.failsClosed(iss.token(user), reads...); err != nil {
				t.Errorf("as %s: %v", user, err)
			}
		}
	}

	if err := topo.SpiceDB.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	recovered(t, topo, iss, syncProc, syncAddr, gateways...)
}

// TestSpiceDBSlowed puts a proxy between a gateway and SpiceDB and holds
// everything it forwards for longer than the gateway's request timeout,
// then takes the latency away.
func TestSpiceDBSlowed(t *testing.T) {
	t.Parallel()
	topo := testutil.StartTopology(t, testutil.TopologyOptions{Seed: seed})
	syncProc, syncAddr := startSync(t, topo)
	px := startProxy(t, topo.SpiceDB.Endpoint())
	iss := newIssuer(t)
	// Without the index every answer is SpiceDB's (a fresh index answers
	// without asking it, which is its point). The last --spicedb-endpoint
	// wins.
	g := startGateway(t, "serve", append(append(topo.RemoteFlags(), iss.fileFlags()...),
		"--index=false", "--spicedb-endpoint", px.addr())...)
	if err := g.decides(iss, readersBefore); err != nil {
		t.Fatal(err)
	}

	px.setLatency(requestTimeout + 5*time.Second)
	// All at once, as callers would be: each is a 503 within the request
	// timeout (and some slack for a busy machine), never an allow.
	const slack = 3 * time.Second
	alice := iss.token("alice")
	var asking sync.WaitGroup
	errs := make([]error, len(reads))
	for i, r := range reads {
		asking.Go(func() {
			began := time.Now()
			a, err := g.ask(r, alice)
			took := time.Since(began)
			switch {
			case err != nil:
				errs[i] = err
			case took > requestTimeout+slack:
				errs[i] = fmt.Errorf("%s %s: answered after %v, beyond the request timeout %v", r.method, r.path, took.Round(time.Millisecond), requestTimeout)
			default:
				errs[i] = failedClosed(a)
				t.Logf("%s %s with SpiceDB slowed: %d after %v", r.method, r.path, a.status, took.Round(time.Millisecond))
			}
		})
	}
	asking.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s %s with SpiceDB slowed: %v", reads[i].method, reads[i].path, err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error { return g.ready(http.StatusServiceUnavailable) })
	// The sync reaches SpiceDB directly and carries this over; the
	// gateway must see it once its own path is fast again.
	exec(t, topo, revokeBob, grantCarol)

	px.setLatency(0)
	recovered(t, topo, iss, syncProc, syncAddr, g)
}
