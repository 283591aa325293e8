package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// SlotSQL reads what the slot gauges show, for one slot ($1) of the current
// database. Operators whose own exporter runs SQL (postgres_exporter's
// custom queries, a cron job) can use it as it is, and alert on it when no
// sync runs.
const SlotSQL = `SELECT active, coalesce(wal_status, '') AS wal_status,
	coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0) AS retained_wal_bytes,
	coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0) AS confirmed_lag_bytes
FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`

// SlotStatus is one row of SlotSQL; Exists is false when there is none.
type SlotStatus struct {
	Exists, Active   bool
	WALStatus        string
	Retained, Behind float64
}

// walStatuses are the wal_status values of pg_replication_slots, and
// "missing" for a slot that does not exist: the label's whole range.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost", "missing"}

// slotStatus reads the slot's row.
func slotStatus(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, slot string) (SlotStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	s := SlotStatus{Exists: true}
	err := q.QueryRow(ctx, SlotSQL, slot).Scan(&s.Active, &s.WALStatus, &s.Retained, &s.Behind)
	if errors.Is(err, pgx.ErrNoRows) {
		return SlotStatus{}, nil
	}
	if err != nil {
		return SlotStatus{}, fmt.Errorf("sync: read slot %s: %w", slot, classify(err, authz.ErrUnavailable))
	}
	return s, nil
}

// slotGauges show the slot as Postgres sees it; the active sync exports
// them, and `tenantgate doctor --metrics` prints them when none runs.
type slotGauges struct {
	retained, behind, active prometheus.Gauge
	walStatus                *prometheus.GaugeVec
}

func newSlotGauges() *slotGauges {
	return &slotGauges{
		retained: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_slot_retained_wal_bytes",
			Help: "Bytes of WAL the replication slot keeps on the Postgres server; a high value fills the server's disk.",
		}),
		behind: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_slot_confirmed_lag_bytes",
			Help: "Bytes of WAL between the server's current position and what the sync confirmed; a high value means the sync falls behind.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tenantgate_sync_slot_active",
			Help: "1 while a replication client streams from the slot (pg_replication_slots.active); 0 means no sync follows it and its WAL piles up.",
		}),
		walStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantgate_sync_slot_wal_status",
			Help: "1 for the slot's wal_status in pg_replication_slots (reserved, extended, unreserved, lost), or missing when there is no slot; lost means max_slot_wal_keep_size invalidated it and the sync must start over with a fresh snapshot.",
		}, []string{"status"}),
	}
}

func (g *slotGauges) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.retained, g.behind, g.active, g.walStatus}
}

// set shows s; every status value is set, so a change of status leaves no
// stale 1 behind.
func (g *slotGauges) set(s SlotStatus) {
	g.retained.Set(s.Retained)
	g.behind.Set(s.Behind)
	g.active.Set(boolGauge(s.Active))
	current := s.WALStatus
	if !s.Exists {
		current = "missing"
	}
	for _, v := range walStatuses {
		g.walStatus.WithLabelValues(v).Set(boolGauge(v == current))
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteSlotMetrics reads the slot and writes its gauges to w in the
// Prometheus text format, for a textfile collector or a cron job to carry
// when no sync runs to export them.
func WriteSlotMetrics(ctx context.Context, w io.Writer, databaseURL, slot string) error {
	cfg, err := source{url: databaseURL}.connConfig()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("slot metrics: connect: %w", classify(err, authz.ErrUnavailable))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s, err := slotStatus(ctx, conn, slot)
	if err != nil {
		return err
	}
	g := newSlotGauges()
	g.set(s)
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.collectors()...)
	families, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("slot metrics: %w", err)
	}
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("slot metrics: %w", err)
		}
	}
	return nil
}
