package outagetest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestPostgresStopped stops the application's PostgreSQL under a sync and
// a gateway, right after a burst of changes the sync may not have applied
// yet, and starts it again on the same port with the same data. SpiceDB's
// datastore is on another server: only the application database goes.
func TestPostgresStopped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := testutil.NewTestPostgres(t)
	testutil.NewAppDatabase(t, pg)
	topo := testutil.StartTopology(t, testutil.TopologyOptions{AppURL: pg.URL("app"), Seed: seed})
	syncProc, syncAddr := startSync(t, topo)
	iss := newIssuer(t)
	g := startGateway(t, "serve", append(append(topo.RemoteFlags(), iss.fileFlags()...), "--max-staleness", staleness.String())...)
	if err := g.decides(iss, readersBefore); err != nil {
		t.Fatal(err)
	}

	// A burst of commits, the last of them moments before the stop: some
	// are likely still on their way to SpiceDB.
	for i := range 100 {
		exec(t, topo, fmt.Sprintf(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('user-%d', 'acme-fr', 'viewer')`, i))
	}
	exec(t, topo, revokeBob)
	if err := pg.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	halted := true
	// A test that fails mid-outage still cleans up: the sync's slot is
	// dropped, and the server stopped, through connections.
	t.Cleanup(func() {
		if halted {
			_ = pg.Start(context.Background())
		}
	})
	testutil.Eventually(t, 10*time.Second, func() error { return g.ready(http.StatusServiceUnavailable) })
	testutil.AwaitReadyz(t, syncAddr, http.StatusServiceUnavailable, 10*time.Second)
	// Management needs the rows at once, lists the companies' names;
	// checks from the permission index fail once the sync's progress has
	// been unknown for --max-staleness.
	alice := iss.token("alice")
	if err := g.failsClosed(alice, grantCarolRequest, request{"GET", "/v1/companies/acme/members", ""}, listReadable); err != nil {
		t.Error(err)
	}
	testutil.Eventually(t, staleness+10*time.Second, func() error {
		return g.failsClosed(alice, reads...)
	})

	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	halted = false
	// Its connections died with the server.
	topo.DB.Reset()
	testutil.Eventually(t, time.Minute, func() error {
		a, err := g.ask(grantCarolRequest, alice)
		if err != nil {
			return err
		}
		if a.status != http.StatusOK {
			return fmt.Errorf("grant carol: %v", a)
		}
		return nil
	})
	recovered(t, topo, iss, syncProc, syncAddr, g)
}
