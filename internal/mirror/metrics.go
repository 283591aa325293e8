package mirror

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appliedLSN     prometheus.Gauge
	lag            prometheus.Gauge
	transactions   prometheus.Counter
	updates        *prometheus.CounterVec
	batchSize      prometheus.Histogram
	skipped        *prometheus.CounterVec
	snapshotRows   prometheus.Counter
	reconciled     *prometheus.CounterVec
	reconcileSkips prometheus.Counter
	streamFailures prometheus.Counter
	slot           *slotGauges
	active         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appliedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_applied_lsn",
			Help: "WAL position (as a number) up to which every commit is in SpiceDB; if it stops rising while Postgres takes writes, the sync is stuck.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_lag_seconds",
			Help: "Seconds from the commit of the oldest transaction in the last write to SpiceDB until that write; a high value means revoked access lingers that long.",
		}),
		transactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_transactions_total",
			Help: "Postgres transactions received from the replication stream; its rate is the change rate the sync follows.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_sync_relationship_updates_total",
			Help: "Relationships written to SpiceDB, by operation (touch, delete, import); a high delete rate means much access is being revoked.",
		}, []string{"op"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tenantgate_sync_batch_size",
			Help:    "Updates per write to SpiceDB; high values mean bursts of changes are being batched.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_sync_dead_letters_total",
			Help: "Rows that could not be mapped to relationships and went to tenantgate.sync_dead_letters, by table; any increase means another program wrote rows tenantgate cannot honour.",
		}, []string{"table"}),
		snapshotRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_snapshot_rows_total",
			Help: "Rows read by initial snapshots; a value rising outside start-up means the sync keeps starting over.",
		}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_sync_reconcile_repairs_total",
			Help: "Relationships a reconcile found wrong in SpiceDB and repaired, by result (missing, extra); any increase means SpiceDB had drifted from Postgres.",
		}, []string{"result"}),
		reconcileSkips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_resume_reconciles_skipped_total",
			Help: "Resumes that skipped their reconcile because the last full reconcile was less than the resume reconcile interval ago; a rising value with a rising tenantgate_sync_stream_failures_total means the stream keeps failing.",
		}),
		streamFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_stream_failures_total",
			Help: "Sync runs that ended with an error and were restarted; a rising value means SpiceDB or Postgres keeps failing.",
		}),
		slot: newSlotGauges(),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_active",
			Help: "1 while this process is the active sync following the stream, 0 while it is a standby or starting over; if no process reports 1, revocations stop reaching SpiceDB.",
		}),
	}
	for _, c := range append([]prometheus.Collector{m.active, m.appliedLSN, m.lag, m.transactions, m.updates, m.batchSize, m.skipped,
		m.snapshotRows, m.reconciled, m.reconcileSkips, m.streamFailures}, m.slot.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
