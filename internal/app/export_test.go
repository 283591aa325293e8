package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/store"
)

// SyncFollower lets the external tests drive a remote gateway's view of the
// sync one poll at a time.
type SyncFollower struct{ f syncFollower }

func (s *SyncFollower) Poll(ctx context.Context, st *store.Store, slot string, logger *slog.Logger) error {
	return s.f.poll(ctx, st, slot, logger)
}

func (s *SyncFollower) Ready() bool { return s.f.ready() }

// SlotWaits is a remote gateway's waiter for consistency tokens, polling
// until ctx ends.
type SlotWaits struct {
	f   *slotFreshness
	reg *prometheus.Registry
}

func StartSlotWaits(ctx context.Context, st *store.Store, slot string, every time.Duration) (*SlotWaits, error) {
	reg := prometheus.NewRegistry()
	f, err := newSlotFreshness(st, slot, every, reg)
	if err != nil {
		return nil, err
	}
	go f.run(ctx)
	return &SlotWaits{f: f, reg: reg}, nil
}

func (w *SlotWaits) AwaitLSN(ctx context.Context, lsn authz.LSN) (string, error) {
	return w.f.AwaitLSN(ctx, lsn)
}

// Polls is how often the sync's progress was read.
func (w *SlotWaits) Polls() float64 {
	families, err := w.reg.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() == "tenantgate_gateway_applied_polls_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}
