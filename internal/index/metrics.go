package index

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reads *prometheus.CounterVec
	// The series of reads, resolved once: a read is too cheap to hash
	// its labels every time.
	readsFresh, readsLoading, readsBehind, readsError prometheus.Counter
	verifications                                     *prometheus.CounterVec
	loads                                             prometheus.Counter
	watchRestarts                                     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, ix *Index) (*metrics, error) {
	m := &metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_index_reads_total",
			Help: "Reads (checks, bulk checks, lists) by who answered them: answered_by=spicedb is the slow path; a high rate with reason=behind means the index lags SpiceDB's Watch by more than --index-wait, reason=loading that it is (re)loading, reason=error that it met data it cannot answer from (see the log).",
		}, []string{"answered_by", "reason"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_index_verifications_total",
			Help: "Index answers re-asked of SpiceDB at the same revision (--index-verify-fraction), by result. Any result=mismatch is a wrong answer from the index: run with --index=false and report it; a high result=skipped means the sample outruns the verifiers.",
		}, []string{"result"}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_index_loads_total",
			Help: "Full loads of the index from SpiceDB's export: more than one means its Watch could not resume (SpiceDB restarted or was unreachable for long).",
		}),
		watchRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_index_watch_restarts_total",
			Help: "Times the index's Watch stream on SpiceDB ended and was resumed; a high rate means an unstable connection to SpiceDB, and reads wait or fall back meanwhile.",
		}),
	}
	// Every series exists from the start, so a dashboard (or a test) reads
	// a zero rather than nothing.
	for _, r := range []string{"match", "mismatch", "error", "skipped"} {
		m.verifications.WithLabelValues(r)
	}
	m.readsFresh = m.reads.WithLabelValues(byIndex, reasonFresh)
	m.readsLoading = m.reads.WithLabelValues(bySpiceDB, reasonLoading)
	m.readsBehind = m.reads.WithLabelValues(bySpiceDB, reasonBehind)
	m.readsError = m.reads.WithLabelValues(bySpiceDB, reasonError)
	stats := func(f func(Stats) float64) func() float64 {
		return func() float64 { return f(ix.Stats()) }
	}
	for _, c := range []prometheus.Collector{
		m.reads, m.verifications, m.loads, m.watchRestarts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tenantgate_index_relationships",
			Help: "Relationships the permission index holds; it should equal SpiceDB's count of company relationships. 0 while it loads.",
		}, stats(func(s Stats) float64 { return float64(s.Relationships) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tenantgate_index_bytes",
			Help: "Estimated memory the permission index holds; high means many relationships, or churn since the last load (deleted IDs keep their slots until a reload).",
		}, func() float64 { return float64(ix.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tenantgate_index_load_seconds",
			Help: "How long the last full load of the index took; reads go to SpiceDB meanwhile, so a high value is a long slow start.",
		}, stats(func(s Stats) float64 { return s.LoadTime.Seconds() })),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("index metrics: %w", err)
		}
	}
	return m, nil
}
