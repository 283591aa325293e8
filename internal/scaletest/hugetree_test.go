package scaletest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// The huge tree is what one user can own by writing rows, far past the
// API's quotas; the small one, a hundredth of it, is the baseline a page of
// the huge one is held against.
var (
	hugeTree  = tree{prefix: "h", fanouts: []int{200, 1000}} // 200,201 companies
	smallTree = tree{prefix: "s", fanouts: []int{20, 100}}   // 2,021 companies
)

const (
	pageSize = 100
	// maxAllocRatio bounds the bytes a page of the huge tree may allocate
	// against a page of the small one. Collecting the whole tree, as Lookup
	// once did, allocated over a hundred times more.
	maxAllocRatio = 2
	// requestTimeout is the gateway's default deadline for one request's
	// backend calls: the design's bound on a page, generous by far.
	requestTimeout = 10 * time.Second
	// followPages are asked for by following cursors, spreadPages after
	// cursors spread over the whole list: 2,000 pages of the huge tree, all
	// followed, would take minutes.
	followPages = 20
	spreadPages = 100
	// contendedPages are asked for by the attacker, one after another,
	// while the tenant lists.
	contendedPages = 20
	// tenantEvery is how many pages of a victim pass between two lists of
	// the unrelated tenant.
	tenantEvery = 10
)

// TestHugeTreeKeepsPagesBounded: a user owns 200,000 companies and adds a
// victim to the root. The victim must still get every page right, and each
// page must cost about what a page of a tree a hundred times smaller costs
// in memory; its time is recorded (docs/benchmarks.md). An unrelated
// tenant's list stays right throughout, also while the owner of the huge
// tree pages through it without pause.
func TestHugeTreeKeepsPagesBounded(t *testing.T) {
	began := time.Now()
	dbURL := testutil.NewTestDatabase(t)
	db := connect(t, dbURL)
	hugeTree.insert(t, db, "attacker")
	grant(t, db, "victim", hugeTree.root(), "viewer")
	smallTree.insert(t, db, "neighbour")
	grant(t, db, "small-victim", smallTree.root(), "viewer")
	exec(t, db, `insert into companies (id, name) values ('tenant-co', 'Tenant')`)
	grant(t, db, "tenant", "tenant-co", "owner")
	seeded := time.Now()
	gw := startGateway(t, dbURL)
	ready := time.Now()
	gw.waitForIndex(t, relationships(t, db))
	t.Logf("setup: seed %d+%d companies %v, gateway ready (sync snapshot) %v, index loaded %v",
		hugeTree.size(), smallTree.size(), seeded.Sub(began).Round(time.Millisecond),
		ready.Sub(seeded).Round(time.Millisecond), time.Since(ready).Round(time.Millisecond))

	tenant := gw.token(t, "tenant")
	var tenantPages []sample
	listTenant := func() { tenantPages = append(tenantPages, checkTenant(t, gw, tenant)) }
	hugeIDs := subtree(t, db, hugeTree.root())
	huge := measurePages(t, gw, gw.token(t, "victim"), hugeIDs, listTenant)
	small := measurePages(t, gw, gw.token(t, "small-victim"), subtree(t, db, smallTree.root()), listTenant)
	contended := whileListing(t, gw, gw.token(t, "attacker"), hugeIDs, func() sample { return checkTenant(t, gw, tenant) })

	for _, s := range []struct {
		name  string
		pages []sample
	}{{"200k tree", huge}, {"2k tree", small}, {"tenant", tenantPages}, {"tenant while the attacker pages", contended}} {
		t.Logf("%s: %d pages, latency p50 %v p99 %v max %v, allocated per page p50 %d B",
			s.name, len(s.pages), percentile(s.pages, tookOf, 50), percentile(s.pages, tookOf, 99),
			percentile(s.pages, tookOf, 100), percentile(s.pages, bytesOf, 50))
	}
	if h, s := percentile(huge, bytesOf, 50), percentile(small, bytesOf, 50); h > maxAllocRatio*s {
		t.Errorf("a page of the 200k tree allocates %d B, of the 2k tree %d B: more than %d times as much, so a page's memory grows with the tree", h, s, maxAllocRatio)
	}
	for name, pages := range map[string][]sample{"pages of the 200k tree": huge, "the tenant's lists while the attacker pages": contended} {
		if p99 := percentile(pages, tookOf, 99); p99 > requestTimeout {
			t.Errorf("%s take %v at p99, more than a request's %v", name, p99, requestTimeout)
		}
	}
	// Measured was the index's path, the default: none went to SpiceDB.
	if n := gw.metric(t, `tenantgate_index_reads_total{answered_by="spicedb"`); n != 0 {
		t.Errorf("%v lists were answered by SpiceDB, not the index", n)
	}
	if n := gw.metric(t, `tenantgate_index_reads_total{answered_by="index"`); n < float64(len(huge)+len(small)) {
		t.Errorf("the index answered %v lists, fewer than the %d measured", n, len(huge)+len(small))
	}
}

func connect(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// measurePages asks for pages of bearer's list, which must be want in
// order, pageSize at a time, and returns what each cost: the first
// followPages by following next_cursor, as a client does, then spreadPages
// after cursors spread evenly over the whole list, the last ones near its
// end. It calls between every tenantEvery pages.
func measurePages(t *testing.T, gw *gateway, bearer string, want []string, between func()) []sample {
	t.Helper()
	var costs []sample
	record := func(cost sample) {
		if costs = append(costs, cost); len(costs)%tenantEvery == 0 {
			between()
		}
	}
	cursor := ""
	for i := 0; i < min(followPages*pageSize, len(want)); i += pageSize {
		ids, next, cost := gw.page(t, bearer, cursor, pageSize)
		checkPage(t, ids, next, want, i)
		record(cost)
		cursor = next
	}
	for k := range spreadPages {
		after := k * (len(want) - 2) / (spreadPages - 1)
		ids, next, cost := gw.page(t, bearer, clientCursor(want[after]), pageSize)
		checkPage(t, ids, next, want, after+1)
		record(cost)
	}
	return costs
}

// checkTenant lists as the unrelated tenant, whose one company must be all
// it reads, and returns what the list cost.
func checkTenant(t *testing.T, gw *gateway, bearer string) sample {
	t.Helper()
	ids, next, cost := gw.page(t, bearer, "", pageSize)
	if !slices.Equal(ids, []string{"tenant-co"}) || next != "" {
		t.Errorf("tenant lists %v (next %q), want [tenant-co]", ids, next)
	}
	return cost
}

// whileListing runs list over and over while bearer, who reads want, asks
// for contendedPages pages of it one after another without pause (at
// cursors spread over the list); it returns what each list cost.
func whileListing(t *testing.T, gw *gateway, bearer string, want []string, list func() sample) []sample {
	t.Helper()
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range contendedPages {
			after := i * (len(want) - 2) / (contendedPages - 1)
			if _, _, _, err = gw.fetch(t.Context(), bearer, clientCursor(want[after]), pageSize); err != nil {
				return
			}
		}
	}()
	var costs []sample
	for {
		select {
		case <-done:
			if err != nil {
				t.Errorf("pages of the 200k tree while the tenant lists: %v", err)
			}
			return costs
		default:
			costs = append(costs, list())
		}
	}
}

// checkPage fails the test unless ids and next are the page of want that
// starts at from.
func checkPage(t *testing.T, ids []string, next string, want []string, from int) {
	t.Helper()
	end := min(from+pageSize, len(want))
	if !slices.Equal(ids, want[from:end]) {
		t.Fatalf("page from %d: %d companies from %v, want %d from %q", from, len(ids), ids[:min(len(ids), 1)], end-from, want[from])
	}
	if (next == "") != (end == len(want)) {
		t.Fatalf("page from %d: next cursor %q, but %d of %d companies listed", from, next, end, len(want))
	}
}

// clientCursor is the cursor of a page that starts after company id. The
// gateway's cursors are not signed (gateway/cursor.go): a client may make
// one up, and it names a position in the client's own list, as here.
func clientCursor(id string) string {
	// Marshalling strings cannot fail.
	b, _ := json.Marshal(map[string]string{"permission": "read", "cursor": id})
	return base64.RawURLEncoding.EncodeToString(b)
}

// sample is what one request cost.
type sample struct {
	took  time.Duration
	bytes uint64
}

func tookOf(s sample) time.Duration { return s.took }
func bytesOf(s sample) uint64       { return s.bytes }

// percentile is the nearest-rank percentile p (1 to 100) of the field of
// samples.
func percentile[T time.Duration | uint64](samples []sample, field func(sample) T, p int) T {
	values := make([]T, len(samples))
	for i, s := range samples {
		values[i] = field(s)
	}
	slices.Sort(values)
	return values[max(0, (p*len(values)+99)/100-1)]
}
