package index_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/index"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
)

// BenchmarkCheck is one check through the Authorizer as the gateway makes
// it: freshness against a floor, then the index (or SpiceDB with
// -index=false semantics left out: that path is SpiceDB's own).
func BenchmarkCheck(b *testing.B) {
	var floor string
	sdb := spicedbtest.NewEmbedded(b, spicedb.WithFloor(func() string { return floor }))
	var updates []authz.Update
	for c := 1; c < 2000; c++ {
		updates = append(updates, authz.Update{Op: authz.OpTouch, Rel: parent(fmt.Sprintf("c%d", c), fmt.Sprintf("c%d", c/4))})
	}
	for u := range 2000 {
		updates = append(updates, authz.Update{Op: authz.OpTouch, Rel: role(fmt.Sprintf("c%d", u%2000), authz.RoleViewer, fmt.Sprintf("u%d", u))})
	}
	token, err := sdb.Write(context.Background(), updates)
	if err != nil {
		b.Fatal(err)
	}
	floor = token
	f := start(b, sdb, sdb.Client, index.Config{Wait: time.Second})
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		req := authz.CheckRequest{User: fmt.Sprintf("u%d", rng.IntN(2000)), Permission: authz.PermRead, Company: fmt.Sprintf("c%d", rng.IntN(2000))}
		if _, _, err := f.a.Check(context.Background(), req, authz.Consistency{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := f.metric(b, "tenantgate_index_reads_total", "answered_by", "spicedb"); n != 0 {
		b.Fatalf("%v reads went to SpiceDB", n)
	}
}
