package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/loadbench"
	"github.com/tenantgate/tenantgate/internal/spicedb"
)

// config is what a run measures; every field reads an environment
// variable, so a quick run needs no code change.
type config struct {
	// rows are the table sizes of the backfill, smallest first; the stream
	// is measured at the last.
	rows []int
	// touchRows bounds the reference run of batched TOUCH writes, which is
	// much slower than the import.
	touchRows int
	// importStreams are the numbers of concurrent ImportBulkRelationships
	// streams the ceiling tries, each a single call; importChunk, when not
	// zero, adds a run of one call per importChunk relationships, one after
	// the other. The fastest is the ceiling.
	importStreams []int
	importChunk   int
	// streamTimeout is SpiceDB's --streaming-api-response-delay-timeout for
	// every SpiceDB of the run, or "default" for SpiceDB's own (30 s).
	streamTimeout string
	// datastoreParams are query parameters added to SpiceDB's datastore
	// URL.
	datastoreParams string
	burst           int
	writers         int
	bulk            int
	// lagRates are the paced change rates of the lag runs: the goal's rate
	// and, for contrast, one the stream can follow.
	lagRates []int
	lagFor   time.Duration
	// lagRuns is how many lag runs each rate gets, one after the other:
	// the first starts right after the backfill, on SpiceDB's freshly
	// imported table, and a single run says little about a tail.
	lagRuns int
	// busyCores is how many busy loops run beside the lag runs, as a noisy
	// neighbour would: the stream's headroom on a loaded machine.
	busyCores  int
	syncCommit bool
	timeout    time.Duration
}

func loadConfig(b *testing.B) config {
	b.Helper()
	return config{
		rows:            envInts(b, "TENANTGATE_BENCH_ROWS", "100000,300000,1000000"),
		touchRows:       envInts(b, "TENANTGATE_BENCH_TOUCH_ROWS", "100000")[0],
		importStreams:   envInts(b, "TENANTGATE_BENCH_IMPORT_STREAMS", "1,2"),
		importChunk:     envInts(b, "TENANTGATE_BENCH_IMPORT_CHUNK", "100000")[0],
		streamTimeout:   envString("TENANTGATE_BENCH_SPICEDB_STREAM_TIMEOUT", "10m"),
		datastoreParams: envString("TENANTGATE_BENCH_SPICEDB_DATASTORE_PARAMS", ""),
		burst:           envInts(b, "TENANTGATE_BENCH_BURST", "50000")[0],
		writers:         envInts(b, "TENANTGATE_BENCH_WRITERS", "8")[0],
		bulk:            envInts(b, "TENANTGATE_BENCH_BULK", "50000")[0],
		lagRates:        envInts(b, "TENANTGATE_BENCH_LAG_RATES", "1000,100"),
		lagFor:          time.Duration(envInts(b, "TENANTGATE_BENCH_LAG_SECONDS", "20")[0]) * time.Second,
		lagRuns:         envInts(b, "TENANTGATE_BENCH_LAG_RUNS", "3")[0],
		busyCores:       envInts(b, "TENANTGATE_BENCH_BUSY_CORES", "0")[0],
		syncCommit:      envInts(b, "TENANTGATE_BENCH_SYNC_COMMIT", "1")[0] == 1,
		timeout:         time.Duration(envInts(b, "TENANTGATE_BENCH_TIMEOUT_MINUTES", "25")[0]) * time.Minute,
	}
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envInts reads a comma-separated list of whole numbers.
func envInts(b *testing.B, name, def string) []int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for s := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want whole numbers, comma-separated", name, v)
		}
		out = append(out, n)
	}
	return out
}

// once fails a leaf benchmark that the framework runs a second time: each
// one is a single timed run against state it changes (an emptied SpiceDB is
// full afterwards), so b.N must be 1 (-benchtime=1x).
func once(b *testing.B) {
	b.Helper()
	if b.N != 1 {
		b.Fatalf("b.N = %d: run with -benchtime=1x; every measurement is one run against state it changes", b.N)
	}
}

// report records a figure with the machine's load next to it, in the
// benchmark line and in the log.
func report(b *testing.B, format string, args ...any) {
	b.Helper()
	b.ReportMetric(load1(), "load1")
	b.Logf(format+" (load %s)", append(args, loadbench.LoadAverage())...)
}

// BenchmarkSync is issue 3's measurement, in one run against one PostgreSQL
// and one SpiceDB build: for every table size, the ceiling (the relationships
// written straight into an empty SpiceDB) and the backfill through
// `tenantgate sync`; at the largest size then the stream's sustained rate
// and its commit-to-visible lag at a fixed rate.
func BenchmarkSync(b *testing.B) {
	cfg := loadConfig(b)
	ctx, cancel := context.WithTimeout(b.Context(), cfg.timeout)
	defer cancel()
	b.Logf("machine: %s; go test pid %d; load %s", loadbench.Machine(), os.Getpid(), loadbench.LoadAverage())
	// SpiceDB cancels a stream that has sent no response for this long, and
	// ImportBulkRelationships sends its only response at the end: with the
	// default of 30 s no import that takes longer can succeed
	// (docs/benchmarks.md). SpiceDB reads every flag from SPICEDB_<FLAG>,
	// and testutil starts it with this process's environment.
	if cfg.streamTimeout != "default" {
		b.Setenv("SPICEDB_STREAMING_API_RESPONSE_DELAY_TIMEOUT", cfg.streamTimeout)
	}
	b.Logf("SpiceDB --streaming-api-response-delay-timeout: %s", cfg.streamTimeout)
	c := startCluster(ctx, b, cfg.datastoreParams)
	b.Logf("SpiceDB datastore URL parameters: %q", cfg.datastoreParams)
	for i, n := range cfg.rows {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			benchSize(ctx, b, c, cfg, n, i == len(cfg.rows)-1)
		})
	}
}

// sizeResult carries figures between the measurements of one size.
type sizeResult struct {
	ceiling float64 // relationships per second, the fastest import
	sync    *syncProc
	sdb     *spiceDB
	// ready is set once the sync's backfill finished; a sync that never got
	// there has nothing to stream.
	ready bool
}

// benchSize measures one table size; the largest also gets the reference
// TOUCH run and the stream measurements.
func benchSize(ctx context.Context, b *testing.B, c *cluster, cfg config, rows int, largest bool) {
	app := c.newAppDB(ctx, b, fmt.Sprintf("app_%d", rows), rows)
	var res sizeResult
	// Deferred, so that no sync or SpiceDB outlives a failed measurement.
	defer res.finish(ctx, b, c, app)
	ceiling := func(name string, streams, chunk int) {
		b.Run(name, func(b *testing.B) {
			if rate := benchImport(ctx, b, c, app, streams, chunk); rate > res.ceiling {
				res.ceiling = rate
			}
		})
	}
	for _, streams := range cfg.importStreams {
		ceiling(fmt.Sprintf("ceiling-import-streams=%d", streams), streams, 0)
	}
	if cfg.importChunk > 0 {
		ceiling(fmt.Sprintf("ceiling-import-chunks=%d", cfg.importChunk), 1, cfg.importChunk)
	}
	if largest {
		b.Run("ceiling-touch", func(b *testing.B) { benchTouch(ctx, b, c, app, cfg.touchRows) })
	}
	b.Run("sync-backfill", func(b *testing.B) { benchBackfill(ctx, b, c, app, &res) })
	if largest {
		b.Run("stream-catch-up", func(b *testing.B) { benchCatchUp(ctx, b, c, app, &res, cfg.syncCommit) })
		b.Run("spicedb-write-before", func(b *testing.B) { benchWriteLatency(ctx, b, c, app, &res) })
		// The lag runs come before anything else writes much to SpiceDB:
		// right after a bulk import is the hardest case (docs/benchmarks.md).
		for _, rate := range cfg.lagRates {
			b.Run(fmt.Sprintf("stream-lag-rate=%d", rate), func(b *testing.B) { benchLagRuns(ctx, b, c, app, &res, cfg, rate) })
		}
		b.Run("spicedb-write-shapes", func(b *testing.B) { benchWriteShapes(ctx, b, c, app, &res) })
		b.Run("stream-burst", func(b *testing.B) { benchBurst(ctx, b, c, app, &res, cfg) })
		b.Run("stream-bulk", func(b *testing.B) { benchBulk(ctx, b, c, app, &res, cfg) })
		b.Run("spicedb-write-after", func(b *testing.B) { benchWriteLatency(ctx, b, c, app, &res) })
	}
}

// finish stops the size's sync and SpiceDB and drops its database, also
// when the run's deadline has passed.
func (res *sizeResult) finish(ctx context.Context, b *testing.B, c *cluster, app *appDB) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if res.sync != nil {
		hwm, _ := peakRSS(res.sync.Pid())
		b.Logf("sync peak RSS over the whole run of this size: %.0f MiB", mib(hwm))
		if err := res.sync.stop(ctx, app); err != nil {
			b.Error(err)
		}
	}
	if res.sdb != nil {
		if err := res.sdb.close(ctx); err != nil {
			b.Error(err)
		}
	}
	app.pool.Close()
	if err := c.dropDatabase(ctx, app.name); err != nil {
		b.Error(err)
	}
}

// benchImport writes the size's relationships into an empty SpiceDB with
// ImportBulkRelationships, over streams concurrent streams of disjoint
// parts, each in calls of chunk relationships (0: one call), and returns
// relationships per second.
func benchImport(ctx context.Context, b *testing.B, c *cluster, app *appDB, streams, chunk int) float64 {
	once(b)
	b.StopTimer()
	sdb, err := c.startSpiceDB(ctx, fmt.Sprintf("spicedb_import_%dx%d_%d", streams, chunk, app.rows))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := sdb.close(ctx); err != nil {
			b.Error(err)
		}
	}()
	m := newMeter(c.postmaster, []string{"spicedb", "bench"}, sdb.pid, os.Getpid())
	parts := split(app.rels, streams)
	errs := make([]error, len(parts))
	loaded := make([]uint64, len(parts))
	before := m.sample()
	b.StartTimer()
	var wg sync.WaitGroup
	for i, part := range parts {
		size := chunk
		if size <= 0 {
			size = len(part)
		}
		wg.Go(func() {
			for call := range slices.Chunk(part, max(size, 1)) {
				n, err := sdb.client.Import(ctx, slices.Values(call))
				loaded[i] += n
				if err != nil {
					errs[i] = fmt.Errorf("after %d relationships: %w", loaded[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	after := m.sample()
	elapsed := after.at.Sub(before.at)
	var total uint64
	for i := range parts {
		if errs[i] != nil {
			b.Fatalf("import stream %d: %v", i, errs[i])
		}
		total += loaded[i]
	}
	if total != uint64(len(app.rels)) {
		b.Fatalf("imported %d relationships, want %d", total, len(app.rels))
	}
	rate := float64(total) / elapsed.Seconds()
	hwm, _ := peakRSS(sdb.pid)
	b.ReportMetric(rate, "rels/s")
	b.ReportMetric(mib(hwm), "spicedb-peak-MiB")
	calls := "one call each"
	if chunk > 0 {
		calls = fmt.Sprintf("calls of %d", chunk)
	}
	report(b, "ceiling: ImportBulkRelationships of %d relationships over %d stream(s), %s, in %v = %.0f rels/s; spicedb peak RSS %.0f MiB; %s",
		total, streams, calls, elapsed.Round(time.Millisecond), rate, mib(hwm), m.usage(before, after))
	return rate
}

// split cuts rels into n parts of nearly equal length.
func split(rels []authz.Relationship, n int) [][]authz.Relationship {
	n = max(n, 1)
	var parts [][]authz.Relationship
	for i := range n {
		parts = append(parts, rels[i*len(rels)/n:(i+1)*len(rels)/n])
	}
	return parts
}

// benchTouch is the reference the sync falls back to on a SpiceDB that is
// not empty: TOUCH writes of 1000, one after the other.
func benchTouch(ctx context.Context, b *testing.B, c *cluster, app *appDB, limit int) {
	once(b)
	b.StopTimer()
	n := min(limit, len(app.rels))
	if n == 0 {
		b.Skip("TENANTGATE_BENCH_TOUCH_ROWS=0")
	}
	sdb, err := c.startSpiceDB(ctx, fmt.Sprintf("spicedb_touch_%d", app.rows))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := sdb.close(ctx); err != nil {
			b.Error(err)
		}
	}()
	updates := make([]authz.Update, n)
	for i, rel := range app.rels[:n] {
		updates[i] = authz.Update{Op: authz.OpTouch, Rel: rel}
	}
	m := newMeter(c.postmaster, []string{"spicedb", "bench"}, sdb.pid, os.Getpid())
	before := m.sample()
	b.StartTimer()
	// Write sends requests of at most 1000, one after the other.
	if _, err := sdb.client.Write(ctx, updates); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	after := m.sample()
	elapsed := after.at.Sub(before.at)
	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(rate, "rels/s")
	report(b, "reference: WriteRelationships TOUCH of %d relationships in requests of 1000 in %v = %.0f rels/s; %s",
		n, elapsed.Round(time.Millisecond), rate, m.usage(before, after))
}

// benchBackfill starts `tenantgate sync` against an empty SpiceDB and times
// it until /readyz answers 200. The sync is left running for the stream
// benchmarks of the size.
func benchBackfill(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult) {
	once(b)
	b.StopTimer()
	sdb, err := c.startSpiceDB(ctx, fmt.Sprintf("spicedb_sync_%d", app.rows))
	if err != nil {
		b.Fatal(err)
	}
	res.sdb = sdb
	walStart, err := walPosition(ctx, app)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	began := time.Now()
	sp, err := c.startSync(app, sdb, fmt.Sprintf("bench_%d", app.rows))
	if err != nil {
		b.Fatal(err)
	}
	res.sync = sp
	m := newMeter(c.postmaster, []string{"sync", "spicedb"}, sp.Pid(), sdb.pid)
	before := m.sample()
	if err := sp.awaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	res.ready = true
	after := m.sample()
	ready := time.Since(began)
	walEnd, err := walPosition(ctx, app)
	if err != nil {
		b.Fatal(err)
	}
	syncHWM, err := peakRSS(sp.Pid())
	if err != nil {
		b.Fatal(err)
	}
	sdbHWM, _ := peakRSS(sdb.pid)
	ev, err := parseSyncLog(sp.logFile)
	if err != nil {
		b.Fatal(err)
	}
	// The backfill ends when the snapshot is applied and the stream
	// starts; ready waits for the stream to apply what was committed
	// meanwhile.
	applied := ev.appliedAt.Sub(began)
	rels := float64(len(app.rels))
	rate, copyRate := rels/applied.Seconds(), rels/ev.copyElapsed.Seconds()
	b.ReportMetric(rate, "rels/s")
	b.ReportMetric(copyRate, "copy-rels/s")
	b.ReportMetric(ms(ev.catchUp), "catch-up-ms")
	b.ReportMetric(mib(syncHWM), "sync-peak-MiB")
	b.ReportMetric(mib(sdbHWM), "spicedb-peak-MiB")
	ratio := ""
	if res.ceiling > 0 {
		b.ReportMetric(rate/res.ceiling, "x-ceiling")
		b.ReportMetric(copyRate/res.ceiling, "copy-x-ceiling")
		ratio = fmt.Sprintf(" = %.2f of the ceiling (copy alone %.2f)", rate/res.ceiling, copyRate/res.ceiling)
	}
	report(b, "sync backfill of %d relationships: snapshot applied after %v = %.0f rels/s%s; copy %v (%.0f rels/s), reconcile %v (read back %d relationships, %d missing, %d extra), the rest %v (start-up, schema, slot, bookkeeping); then caught up and ready after %v more (%v in all); sync peak RSS %.0f MiB, spicedb peak RSS %.0f MiB; %s",
		len(app.rels), applied.Round(time.Millisecond), rate, ratio, ev.copyElapsed.Round(time.Millisecond), copyRate,
		ev.reconcile.Round(time.Millisecond), ev.reconciled, ev.missing, ev.extra, (applied - ev.copyElapsed - ev.reconcile).Round(time.Millisecond),
		ev.catchUp.Round(time.Millisecond), ready.Round(time.Millisecond), mib(syncHWM), mib(sdbHWM), m.usage(before, after))
	b.Logf("WAL written on the server during the backfill: %.0f MiB; %s", mib(int64(walEnd-walStart)), sdb.tupleStats(ctx))
	if err := sdb.analyze(ctx, b); err != nil {
		b.Fatal(err)
	}
}

// walPosition is the server's current WAL insert position.
func walPosition(ctx context.Context, app *appDB) (authz.LSN, error) {
	var pos authz.LSN
	if err := app.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("wal position: %w", err)
	}
	return pos, nil
}

// streamMeter accounts for the sync, SpiceDB and the walsender decoding the
// slot.
func streamMeter(ctx context.Context, c *cluster, app *appDB, res *sizeResult) *meter {
	return newMeter(c.postmaster, []string{"sync", "spicedb", "postgres walsender"}, res.sync.Pid(), res.sdb.pid, res.sync.walsender(ctx, app))
}

// benchCatchUp commits one change as soon as the sync is ready and times it
// until it is visible. Logical decoding reads the server's whole WAL in
// order, so after a backfill it first has to get through what the backfill
// wrote (SpiceDB's own import, when its datastore shares the server); the
// sync is ready only once it has, so the backlog left here should be small
// and the change visible at the stream's usual lag.
func benchCatchUp(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult, syncCommit bool) {
	once(b)
	b.StopTimer()
	sp := ensureSync(ctx, b, c, app, res)
	writer, err := writerPool(ctx, app.url, 1, syncCommit)
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	backlog, err := sp.slotBacklog(ctx, app)
	if err != nil {
		b.Fatal(err)
	}
	m := streamMeter(ctx, c, app, res)
	before := m.sample()
	b.StartTimer()
	pos, err := toggle(ctx, writer, 0)
	if err != nil {
		b.Fatal(err)
	}
	committed := time.Now()
	visible, err := awaitCheckpoint(ctx, app.pool, sp.slot, pos)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	after := m.sample()
	lag := visible.Sub(committed)
	b.ReportMetric(ms(lag), "lag-ms")
	b.ReportMetric(mib(backlog), "backlog-MiB")
	report(b, "catch-up: the slot had %.0f MiB of WAL to decode when the sync became ready; a change committed then was visible after %v; %s",
		mib(backlog), lag.Round(time.Millisecond), m.usage(before, after))
}

// ensureSync starts a sync for the stream benchmarks when the backfill
// benchmark was filtered out, untimed.
func ensureSync(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult) *syncProc {
	b.Helper()
	if res.sync != nil {
		if !res.ready {
			b.Skip("the sync never became ready")
		}
		return res.sync
	}
	var err error
	if res.sdb, err = c.startSpiceDB(ctx, fmt.Sprintf("spicedb_sync_%d", app.rows)); err != nil {
		b.Fatal(err)
	}
	if res.sync, err = c.startSync(app, res.sdb, fmt.Sprintf("bench_%d", app.rows)); err != nil {
		b.Fatal(err)
	}
	if err := res.sync.awaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	res.ready = true
	if err := res.sdb.analyze(ctx, b); err != nil {
		b.Fatal(err)
	}
	return res.sync
}

// toggle flips membership i's role and returns the WAL insert position
// before its commit.
func toggle(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, i int) (authz.LSN, error) {
	var lsn authz.LSN
	if err := q.QueryRow(ctx, toggleSQL, membershipID(i)).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("toggle membership %d: %w", i, err)
	}
	return lsn, nil
}

// batchStats says how the sync batched the changes between two scrapes.
func batchStats(before, after map[string]float64) string {
	writes := after["tenantgate_sync_batch_size_count"] - before["tenantgate_sync_batch_size_count"]
	updates := after["tenantgate_sync_batch_size_sum"] - before["tenantgate_sync_batch_size_sum"]
	txs := after["tenantgate_sync_transactions_total"] - before["tenantgate_sync_transactions_total"]
	mean := 0.0
	if writes > 0 {
		mean = updates / writes
	}
	return fmt.Sprintf("%.0f transactions received, %.0f SpiceDB writes of %.1f updates on average", txs, writes, mean)
}

// benchBurst commits single-row updates as fast as cfg.writers connections
// can and times them until the sync has applied the last one: the sustained
// rate, if the writers outrun the sync; a lower bound of it otherwise (the
// tail after the last commit says which).
func benchBurst(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult, cfg config) {
	once(b)
	b.StopTimer()
	sp := ensureSync(ctx, b, c, app, res)
	n := min(cfg.burst, app.rows-1)
	if n <= 0 || cfg.writers <= 0 {
		b.Skip("TENANTGATE_BENCH_BURST or TENANTGATE_BENCH_WRITERS is 0")
	}
	pool, err := writerPool(ctx, app.url, cfg.writers, cfg.syncCommit)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	// Distinct rows, so no two changes of the burst collapse into one
	// SpiceDB update.
	ids := rand.New(rand.NewPCG(1, 2)).Perm(app.rows)[:n]
	mBefore, err := sp.metrics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := streamMeter(ctx, c, app, res)
	before := m.sample()
	b.StartTimer()
	began := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, cfg.writers)
	for w := range cfg.writers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n) && errs[w] == nil; i = next.Add(1) - 1 {
				_, errs[w] = toggle(ctx, pool, ids[i])
			}
		})
	}
	wg.Wait()
	committed := time.Now()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	// A last change after every burst commit returned: its pre-commit
	// position lies past all of theirs, so the checkpoint past it covers
	// the whole burst.
	marker, err := toggle(ctx, pool, ids[0])
	if err != nil {
		b.Fatal(err)
	}
	visible, err := awaitCheckpoint(ctx, pool, sp.slot, marker)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	after := m.sample()
	mAfter, err := sp.metrics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	total := visible.Sub(began)
	rate, commitRate := float64(n+1)/total.Seconds(), float64(n)/committed.Sub(began).Seconds()
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(commitRate, "commits/s")
	b.ReportMetric(ms(visible.Sub(committed)), "tail-ms")
	report(b, "burst: %d single-row updates from %d writers committed in %v (%.0f commits/s); all visible after %v = %.0f changes/s; tail after the last commit %v; %s; %s",
		n, cfg.writers, committed.Sub(began).Round(time.Millisecond), commitRate, total.Round(time.Millisecond), rate,
		visible.Sub(committed).Round(time.Millisecond), batchStats(mBefore, mAfter), m.usage(before, after))
	b.Logf("spicedb after the burst: %s", res.sdb.tupleStats(ctx))
}

// benchBulk commits cfg.bulk updates in one transaction and times the sync
// from the commit until it has applied them: its throughput without the
// per-transaction cost.
func benchBulk(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult, cfg config) {
	once(b)
	b.StopTimer()
	sp := ensureSync(ctx, b, c, app, res)
	n := min(cfg.bulk, app.rows)
	if n == 0 {
		b.Skip("TENANTGATE_BENCH_BULK=0")
	}
	pool, err := writerPool(ctx, app.url, 1, cfg.syncCommit)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	mBefore, err := sp.metrics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := streamMeter(ctx, c, app, res)
	before := m.sample()
	b.StartTimer()
	began := time.Now()
	var lsn authz.LSN
	// The last rows of the table, which the burst (a random sample) mostly
	// left alone.
	err = pool.QueryRow(ctx, `WITH changed AS (
			UPDATE company_memberships SET role = CASE WHEN role = 'viewer' THEN 'editor' ELSE 'viewer' END, updated_at = now()
			WHERE id IN (SELECT 'm' || g FROM generate_series($1::int - $2::int, $1::int - 1) g) RETURNING 1)
		SELECT pg_current_wal_insert_lsn() FROM (SELECT count(*) FROM changed) c`, app.rows, n).Scan(&lsn)
	if err != nil {
		b.Fatalf("bulk update: %v", err)
	}
	committed := time.Now()
	visible, err := awaitCheckpoint(ctx, pool, sp.slot, lsn)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	after := m.sample()
	mAfter, err := sp.metrics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	apply := visible.Sub(committed)
	rate := float64(n) / apply.Seconds()
	b.ReportMetric(rate, "changes/s")
	report(b, "bulk: one transaction of %d updates took %v to commit; visible %v after the commit = %.0f changes/s; %s; %s",
		n, committed.Sub(began).Round(time.Millisecond), apply.Round(time.Millisecond), rate, batchStats(mBefore, mAfter), m.usage(before, after))
	b.Logf("spicedb after the bulk update: %s", res.sdb.tupleStats(ctx))
}

// lagSample is one paced change: when its commit returned and the WAL
// insert position before that commit.
type lagSample struct {
	committed time.Time
	lsn       authz.LSN
}

// benchLag commits single-row updates at rate per second from one
// connection and measures, for each, the time from its commit until the
// sync recorded a checkpoint past it. One writer makes the position exact:
// no other change can commit between a sample's pre-commit position and
// its commit, so the first checkpoint past that position is the first that
// covers the sample.
func benchLag(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult, rate int, lagFor time.Duration, syncCommit bool) time.Duration {
	once(b)
	b.StopTimer()
	sp := ensureSync(ctx, b, c, app, res)
	if rate <= 0 || lagFor <= 0 {
		b.Skip("TENANTGATE_BENCH_LAG_RATES or TENANTGATE_BENCH_LAG_SECONDS is 0")
	}
	conn, err := writerPool(ctx, app.url, 1, syncCommit)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	mBefore, err := sp.metrics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := streamMeter(ctx, c, app, res)
	interval := time.Second / time.Duration(rate)
	want := int(lagFor / interval)
	samples := make([]lagSample, 0, want)
	rng := rand.New(rand.NewPCG(3, 4))
	pace := time.NewTimer(0)
	defer pace.Stop()
	if err := c.resetStatementStats(ctx); err != nil {
		b.Fatal(err)
	}
	before := m.sample()
	b.StartTimer()
	began := time.Now()
	late := 0
	for i := range want {
		// Pacing, not synchronisation: change i is due at a fixed offset,
		// whatever the previous ones took (an open-loop load).
		if wait := time.Until(began.Add(time.Duration(i) * interval)); wait > 0 {
			pace.Reset(wait)
			select {
			case <-ctx.Done():
				b.Fatal(context.Cause(ctx))
			case <-pace.C:
			}
		} else if wait < -10*time.Millisecond {
			late++
		}
		lsn, err := toggle(ctx, conn, rng.IntN(app.rows))
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, lagSample{committed: time.Now(), lsn: lsn})
	}
	writing := time.Since(began)
	last := samples[len(samples)-1]
	if _, err := awaitCheckpoint(ctx, conn, sp.slot, last.lsn); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	after := m.sample()
	mAfter, err := sp.metrics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	lags, err := lagsOf(ctx, conn, sp.slot, samples)
	if err != nil {
		b.Fatal(err)
	}
	// In commit order, the ends show whether the lag grew during the run.
	firstLag, lastLag := lags[0], lags[len(lags)-1]
	slices.Sort(lags)
	achieved := float64(len(samples)) / writing.Seconds()
	b.ReportMetric(achieved, "changes/s")
	for _, p := range []float64{50, 95, 99} {
		b.ReportMetric(ms(percentile(lags, p)), fmt.Sprintf("p%.0f-ms", p))
	}
	b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
	report(b, "lag at %d changes/s for %v: achieved %.0f changes/s (%d changes started over 10 ms late); commit to visible p50 %v, p95 %v, p99 %v, max %v (first change %v, last %v); %s; %s",
		rate, lagFor, achieved, late, percentile(lags, 50).Round(time.Millisecond/10), percentile(lags, 95).Round(time.Millisecond/10),
		percentile(lags, 99).Round(time.Millisecond/10), lags[len(lags)-1].Round(time.Millisecond/10),
		firstLag.Round(time.Millisecond/10), lastLag.Round(time.Millisecond/10), batchStats(mBefore, mAfter), m.usage(before, after))
	b.Logf("spicedb after the lag run: %s", res.sdb.tupleStats(ctx))
	profile, err := c.statementProfile(ctx, 8)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("statements that took PostgreSQL's time during the lag run:%s", profile)
	return percentile(lags, 99)
}

// benchLagRuns runs cfg.lagRuns lag runs at rate one after the other, with
// cfg.busyCores busy loops beside them, and logs the spread of their p99s.
func benchLagRuns(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult, cfg config, rate int) {
	if cfg.busyCores > 0 {
		stop, err := busyLoops(ctx, cfg.busyCores)
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
		b.Logf("%d busy loop(s) run beside the lag runs", cfg.busyCores)
	}
	var p99s []string
	for run := range max(cfg.lagRuns, 1) {
		b.Run(fmt.Sprintf("run=%d", run+1), func(b *testing.B) {
			p99 := benchLag(ctx, b, c, app, res, rate, cfg.lagFor, cfg.syncCommit)
			p99s = append(p99s, p99.Round(time.Millisecond/10).String())
		})
	}
	b.Logf("lag p99 at %d changes/s, run by run: %s", rate, strings.Join(p99s, ", "))
}

// lagsOf matches every sample with the first checkpoint past its position
// and returns the lags, in the samples' order.
func lagsOf(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, slot string, samples []lagSample) ([]time.Duration, error) {
	type checkpoint struct {
		lsn authz.LSN
		at  time.Time
	}
	rows, err := db.Query(ctx, `SELECT lsn, applied_at FROM tenantgate.sync_checkpoints
		WHERE slot = $1 AND lsn > $2::pg_lsn ORDER BY lsn`, slot, samples[0].lsn.String())
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	var cps []checkpoint
	for rows.Next() {
		var cp checkpoint
		if err := rows.Scan(&cp.lsn, &cp.at); err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		cps = append(cps, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	lags := make([]time.Duration, len(samples))
	for i, s := range samples {
		j := sort.Search(len(cps), func(j int) bool { return cps[j].lsn > s.lsn })
		if j == len(cps) {
			return nil, fmt.Errorf("no checkpoint past sample %d at %s", i, s.lsn)
		}
		lags[i] = cps[j].at.Sub(s.committed)
	}
	return lags, nil
}

// writeProbes is how many writes benchWriteLatency times.
const writeProbes = 200

// benchWriteLatency times WriteRelationships requests of two updates, the
// size the sync sends for one changed membership, on the synced SpiceDB:
// the floor under the stream's per-write cost. Each request touches a probe
// relationship and deletes the previous one, so SpiceDB ends as it began.
func benchWriteLatency(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult) {
	once(b)
	b.StopTimer()
	ensureSync(ctx, b, c, app, res)
	probe := func(i int) authz.Relationship {
		return authz.Relationship{Resource: "c0", Relation: "viewer", SubjectType: authz.TypeUser, SubjectID: fmt.Sprintf("bench-probe-%d", i)}
	}
	lat := make([]time.Duration, 0, writeProbes)
	b.StartTimer()
	for i := range writeProbes {
		updates := []authz.Update{{Op: authz.OpTouch, Rel: probe(i)}}
		if i > 0 {
			updates = append(updates, authz.Update{Op: authz.OpDelete, Rel: probe(i - 1)})
		}
		began := time.Now()
		if _, err := res.sdb.client.Write(ctx, updates); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(began))
	}
	b.StopTimer()
	if _, err := res.sdb.client.Write(ctx, []authz.Update{{Op: authz.OpDelete, Rel: probe(writeProbes - 1)}}); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	for _, p := range []float64{50, 99} {
		b.ReportMetric(ms(percentile(lat, p)), fmt.Sprintf("p%.0f-ms", p))
	}
	report(b, "WriteRelationships of 2 updates on the synced SpiceDB, %d in a row: p50 %v, p99 %v, max %v; %s",
		writeProbes, percentile(lat, 50).Round(time.Millisecond/10), percentile(lat, 99).Round(time.Millisecond/10),
		lat[len(lat)-1].Round(time.Millisecond/10), res.sdb.tupleStats(ctx))
}

// writeShapeUpdates is how many updates each write shape sends in all.
const writeShapeUpdates = 8000

// benchWriteShapes times the stream's kind of write (each change a DELETE of
// a member's relationship and a TOUCH of it under another role) on the
// synced SpiceDB in requests of several sizes, one at a time and
// concurrently: how the sync should cut a backlog into requests. Every
// timed write is undone, untimed, so SpiceDB ends as it began.
func benchWriteShapes(ctx context.Context, b *testing.B, c *cluster, app *appDB, res *sizeResult) {
	once(b)
	b.StopTimer()
	ensureSync(ctx, b, c, app, res)
	var members []authz.Relationship
	for _, rel := range app.rels {
		if rel.SubjectType == authz.TypeUser {
			members = append(members, rel)
		}
	}
	// Straight to SpiceDB: the client tenantgate uses cuts requests down.
	raw, err := authzed.NewClient(res.sdb.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(res.sdb.Token()))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, shape := range []struct{ size, concurrent int }{
		{1000, 1}, {500, 1}, {200, 1}, {100, 1}, {50, 1}, {20, 1}, {100, 2}, {100, 4}, {50, 4},
	} {
		picked := rng.Perm(len(members))[:writeShapeUpdates/2]
		forward, backward := make([]authz.Update, 0, writeShapeUpdates), make([]authz.Update, 0, writeShapeUpdates)
		for _, i := range picked {
			old := members[i]
			moved := old
			moved.Relation = string(authz.RoleViewer)
			if old.Relation == string(authz.RoleViewer) {
				moved.Relation = string(authz.RoleEditor)
			}
			forward = append(forward, authz.Update{Op: authz.OpDelete, Rel: old}, authz.Update{Op: authz.OpTouch, Rel: moved})
			backward = append(backward, authz.Update{Op: authz.OpDelete, Rel: moved}, authz.Update{Op: authz.OpTouch, Rel: old})
		}
		requests := slices.Collect(slices.Chunk(forward, shape.size))
		lat := make([]time.Duration, len(requests))
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, shape.concurrent)
		b.StartTimer()
		began := time.Now()
		for w := range shape.concurrent {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(requests)) && errs[w] == nil; i = next.Add(1) - 1 {
					t := time.Now()
					_, errs[w] = raw.WriteRelationships(ctx, writeRequest(requests[i]))
					lat[i] = time.Since(t)
				}
			})
		}
		wg.Wait()
		took := time.Since(began)
		b.StopTimer()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		for req := range slices.Chunk(backward, spicedb.MaxUpdatesPerWrite) {
			if _, err := res.sdb.client.Write(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		slices.Sort(lat)
		b.Logf("write shape: %d updates in requests of %d, %d at a time: %.0f updates/s; per request p50 %v, p99 %v",
			len(forward), shape.size, shape.concurrent, float64(len(forward))/took.Seconds(),
			percentile(lat, 50).Round(time.Millisecond/10), percentile(lat, 99).Round(time.Millisecond/10))
	}
	report(b, "write shapes done")
}

// writeRequest is the WriteRelationships request of updates, as is.
func writeRequest(updates []authz.Update) *v1.WriteRelationshipsRequest {
	req := &v1.WriteRelationshipsRequest{}
	for _, u := range updates {
		op := v1.RelationshipUpdate_OPERATION_TOUCH
		if u.Op == authz.OpDelete {
			op = v1.RelationshipUpdate_OPERATION_DELETE
		}
		req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: authz.TypeCompany, ObjectId: spicedb.EncodeID(u.Rel.Resource)},
			Relation: u.Rel.Relation,
			Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: u.Rel.SubjectType, ObjectId: spicedb.EncodeID(u.Rel.SubjectID)}},
		}})
	}
	return req
}
