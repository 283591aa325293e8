package sync

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appliedLSN     prometheus.Gauge
	lag            prometheus.Gauge
	transactions   prometheus.Counter
	updates        *prometheus.CounterVec
	skipped        prometheus.Counter
	snapshotRows   prometheus.Counter
	pruned         prometheus.Counter
	streamFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appliedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_applied_lsn",
			Help: "WAL position (as a number) of the last transaction applied to SpiceDB; if it stops rising while Postgres takes writes, the sync is stuck.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_lag_seconds",
			Help: "Seconds between a transaction's commit in Postgres and its application to SpiceDB, for the last one applied; a high value means revoked access lingers that long.",
		}),
		transactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_transactions_total",
			Help: "Postgres transactions applied to SpiceDB; its rate is the sync's throughput.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_sync_relationship_updates_total",
			Help: "Relationship updates sent to SpiceDB, by operation; a high delete rate means much access is being revoked.",
		}, []string{"op"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_skipped_rows_total",
			Help: "Rows that could not be mapped to relationships (bad ID, unknown role or status) and were skipped; any increase means another program wrote rows tenantgate cannot honour.",
		}),
		snapshotRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_snapshot_rows_total",
			Help: "Rows read by initial snapshots; a value rising outside start-up means the sync keeps restarting.",
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_pruned_relationships_total",
			Help: "Relationships found in SpiceDB but not derived from Postgres at snapshot time, and deleted; a high value means SpiceDB had drifted (changes made while the sync was down, or writes from elsewhere).",
		}),
		streamFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_sync_stream_failures_total",
			Help: "Replication streams that ended with an error; any increase means SpiceDB stopped following Postgres until a restart.",
		}),
	}
	for _, c := range []prometheus.Collector{m.appliedLSN, m.lag, m.transactions, m.updates, m.skipped, m.snapshotRows, m.pruned, m.streamFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
