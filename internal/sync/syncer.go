package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Target is the relationship index the sync keeps up to date (SpiceDB).
type Target interface {
	// Write applies updates, returning the revision that covers them.
	Write(ctx context.Context, updates []authz.Update) (string, error)
	// DeleteRelations removes every relationship of the given relations.
	DeleteRelations(ctx context.Context, relations []string) (string, error)
	// ReadRelationships streams every relationship the target holds.
	ReadRelationships(ctx context.Context, fn func(authz.Relationship) error) error
}

// Config configures a Syncer.
type Config struct {
	// DatabaseURL is the application's Postgres, which must run with
	// wal_level=logical and have been migrated (publication included).
	DatabaseURL string
	// Publication names the publication of the synced tables.
	Publication string
	// StatusInterval is how often the applied position is reported to
	// Postgres even when nothing happens, so the slot does not pin WAL.
	StatusInterval time.Duration
	// WriteTimeout bounds one write to the target.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registry     prometheus.Registerer
}

// Defaults for Config's zero values.
const (
	DefaultPublication    = "tenantgate"
	DefaultStatusInterval = 10 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return c
}

// Syncer mirrors Postgres into a Target. Run it once; it is safe to ask for
// its state from other goroutines while it runs.
type Syncer struct {
	cfg     Config
	target  Target
	metrics *metrics

	ready atomic.Bool
	mu    stdsync.Mutex
	token string
}

// New prepares a Syncer.
func New(cfg Config, target Target) (*Syncer, error) {
	cfg = cfg.withDefaults()
	if cfg.DatabaseURL == "" {
		return nil, fmt.Errorf("sync: %w: database url is required", authz.ErrInvalid)
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("sync: metrics: %w", err)
	}
	return &Syncer{cfg: cfg, target: target, metrics: m}, nil
}

// Ready reports whether the initial snapshot is applied and the stream is
// being followed.
func (s *Syncer) Ready() bool { return s.ready.Load() }

// LatestToken is the revision of the last write the sync applied; reads at
// least as fresh as it see every change the sync has carried over.
func (s *Syncer) LatestToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

func (s *Syncer) recordToken(token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
}

// Run takes a snapshot and follows the change stream until ctx ends (nil) or
// the stream fails (an error; the Syncer is then no longer Ready). The slot is
// temporary: a new Run starts with a fresh snapshot.
func (s *Syncer) Run(ctx context.Context) error {
	defer s.ready.Store(false)
	slot, err := slotName()
	if err != nil {
		return err
	}
	repl, err := connectReplication(ctx, s.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	start, err := s.snapshot(ctx, repl, slot)
	if err != nil {
		return err
	}
	err = s.stream(ctx, repl, slot, start)
	if ctx.Err() != nil {
		return nil
	}
	s.metrics.streamFailures.Inc()
	return err
}

// apply writes updates to the target with a bounded deadline and accounts
// for them.
func (s *Syncer) apply(ctx context.Context, updates []authz.Update) error {
	if len(updates) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	token, err := s.target.Write(ctx, updates)
	if err != nil {
		return fmt.Errorf("sync: apply %d updates: %w", len(updates), err)
	}
	for _, u := range updates {
		op := "touch"
		if u.Op == authz.OpDelete {
			op = "delete"
		}
		s.metrics.updates.WithLabelValues(op).Inc()
	}
	s.recordToken(token)
	return nil
}

func (s *Syncer) skip(errs []error) {
	for _, err := range errs {
		s.metrics.skipped.Inc()
		s.cfg.Logger.Warn("sync: row skipped", "reason", err.Error())
	}
}

func slotName() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sync: slot name: %w", err)
	}
	return "tenantgate_" + hex.EncodeToString(b), nil
}
