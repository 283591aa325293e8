package outagetest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// resnapshotSeed adds enough memberships to the seed that the re-snapshot
// takes a moment, with the gateway asked all along.
const resnapshotSeed = seed + `
INSERT INTO company_memberships (user_id, company_id, role)
SELECT 'user-' || i, 'acme-fr', 'viewer' FROM generate_series(1, 5000) i;`

// TestSlotDroppedGatewayStaysReady drops the running sync's slot, as a
// failover or restore without the slot would. The sync makes a new slot
// and reconciles SpiceDB with its snapshot in place, while a gateway keeps
// answering from SpiceDB as it is: its /readyz never fails, alice is
// allowed every time she asks, changes made while the new snapshot is
// built arrive, and nothing is lost.
func TestSlotDroppedGatewayStaysReady(t *testing.T) {
	t.Parallel()
	topo := testutil.StartTopology(t, testutil.TopologyOptions{Seed: resnapshotSeed})
	syncProc, syncAddr := startSync(t, topo)
	iss := newIssuer(t)
	// The bound is far longer than this re-snapshot, so none of its
	// changes may make the gateway stale.
	gw := startGateway(t, "gateway", append(append(topo.RemoteFlags(), iss.fileFlags()...), "--max-staleness", "30s")...)
	if err := gw.decides(iss, readersBefore); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(t.Context())
	var watchers sync.WaitGroup
	longestUnready, wrong := watchGateway(ctx, &watchers, gw, iss)
	var writes int
	watchers.Go(func() { writes = keepWriting(ctx, topo) })

	dropSlot(t, topo)
	// The new slot's snapshot is in once the sync says so and is caught
	// up again.
	testutil.Eventually(t, time.Minute, func() error {
		if !strings.Contains(syncProc.Output(), "reconciling it with the snapshot instead of importing") {
			return fmt.Errorf("the sync has not re-snapshotted yet")
		}
		return nil
	})
	testutil.AwaitReadyz(t, syncAddr, http.StatusOK, time.Minute)
	exec(t, topo, revokeBob, grantCarol)
	stop()
	watchers.Wait()
	t.Logf("%d changes made around the re-snapshot", writes)

	recovered(t, topo, iss, syncProc, syncAddr, gw)
	if d := longestUnready(); d > 0 {
		t.Errorf("the gateway's /readyz failed for %v during the re-snapshot; want never", d)
	}
	if err := wrong(); err != nil {
		t.Errorf("the gateway answered wrongly during the re-snapshot: %v", err)
	}
}

// dropSlot ends the sync's walsender and drops its slot, retrying until
// the drop wins the race with the sync's reconnect.
func dropSlot(t *testing.T, topo *testutil.Topology) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() error {
		ctx := t.Context()
		if _, err := topo.DB.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, topo.SyncSlot); err != nil {
			return err
		}
		_, err := topo.DB.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, topo.SyncSlot)
		return err
	})
}

// watchGateway polls the gateway's /readyz and asks whether alice, who is
// never revoked, may read acme, until ctx ends. It returns the longest
// time /readyz did not answer 200, and the first wrong answer.
func watchGateway(ctx context.Context, wg *sync.WaitGroup, gw *gateway, iss issuer) (longest func() time.Duration, wrong func() error) {
	var mu sync.Mutex
	var worst time.Duration
	var firstWrong error
	wg.Go(func() {
		var since time.Time
		for ctx.Err() == nil {
			if testutil.Readyz(gw.addr) == http.StatusOK {
				since = time.Time{}
			} else {
				now := time.Now()
				if since.IsZero() {
					since = now
				}
				// One failed poll counts as an outage of one poll.
				mu.Lock()
				worst = max(worst, now.Sub(since)+pollEvery)
				mu.Unlock()
			}
			waitPoll(ctx)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			err := aliceMayRead(gw, iss)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				mu.Lock()
				if firstWrong == nil {
					firstWrong = err
				}
				mu.Unlock()
			}
			waitPoll(ctx)
		}
	})
	longest = func() time.Duration { mu.Lock(); defer mu.Unlock(); return worst }
	wrong = func() error { mu.Lock(); defer mu.Unlock(); return firstWrong }
	return longest, wrong
}

// aliceMayRead reports why the gateway does not allow alice to read acme.
func aliceMayRead(gw *gateway, iss issuer) error {
	a, err := gw.ask(checkAcme, iss.token("alice"))
	if err != nil {
		return err
	}
	got, err := allowed(a)
	if err == nil && !got {
		err = fmt.Errorf("denied: %v", a)
	}
	return err
}

// keepWriting grants and revokes memberships until ctx ends, and returns
// how many changes it made.
func keepWriting(ctx context.Context, topo *testutil.Topology) int {
	n := 0
	for ; ctx.Err() == nil; n++ {
		user := fmt.Sprintf("writer-%d", n)
		if _, err := topo.DB.Exec(ctx, `INSERT INTO company_memberships (user_id, company_id, role) VALUES ($1, 'acme', 'viewer')`, user); err != nil {
			return n
		}
		// Every other grant is revoked again, so deletes flow too.
		if n%2 == 1 {
			if _, err := topo.DB.Exec(ctx, `DELETE FROM company_memberships WHERE user_id = $1`, user); err != nil {
				return n
			}
		}
		waitPoll(ctx)
	}
	return n
}

// pollEvery paces the watchers and the writer.
const pollEvery = 50 * time.Millisecond

// waitPoll waits one poll, or until ctx ends.
func waitPoll(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(pollEvery):
	}
}
