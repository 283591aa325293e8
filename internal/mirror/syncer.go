package mirror

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/wal"
)

// Target is the relationship index the sync keeps up to date (SpiceDB).
type Target interface {
	// Write applies idempotent updates, returning the revision covering them.
	Write(ctx context.Context, updates []authz.Update) (string, error)
	// Import loads relationships into an empty target, fast.
	Import(ctx context.Context, rels iter.Seq[authz.Relationship]) (uint64, error)
	// DeleteRelations removes every relationship of the given relations.
	DeleteRelations(ctx context.Context, relations []string) (string, error)
	// ReadRelationships streams every relationship the target holds.
	ReadRelationships(ctx context.Context, fn func(authz.Relationship) error) error
	// HeadToken returns a revision covering every write made so far.
	HeadToken(ctx context.Context) (string, error)
}

// Config configures a Syncer.
type Config struct {
	// DatabaseURL is the application's Postgres, which must run with
	// wal_level=logical and have been migrated (publication included).
	DatabaseURL string
	// Password, when not nil, is the password every connection logs in
	// with instead of DatabaseURL's, asked as it connects: one read from a
	// file that is rotated while the sync runs. A refusal of it is retried
	// for a while (passwordGrace) before the sync gives up.
	Password func() string
	// Publication names the publication of the synced tables.
	Publication string
	// Persistent keeps a named replication slot across runs and resumes
	// from it, for a SpiceDB that outlives the process. Only one sync per
	// slot is active; others wait as hot standbys. Without it every run
	// starts from a fresh snapshot on a temporary slot (embedded memory
	// datastore).
	Persistent bool
	// Slot names the persistent slot.
	Slot string
	// StatusInterval is how often the applied position is reported to
	// Postgres even when nothing happens.
	StatusInterval time.Duration
	// FlushDelay is how long committed changes may wait to be batched with
	// the next ones before they are written to the target.
	FlushDelay time.Duration
	// HeartbeatInterval is how often an idle sync writes WAL of its own so
	// its slot can advance.
	HeartbeatInterval time.Duration
	// StandbyPoll is how often a standby tries to become the active sync.
	StandbyPoll time.Duration
	// ReconcileInterval schedules a full reconcile while running; zero
	// disables the schedule.
	ReconcileInterval time.Duration
	// ReconcileOnResume reconciles when a run resumes an existing slot,
	// which repairs a SpiceDB that was emptied, restored or replaced while
	// no sync ran.
	ReconcileOnResume bool
	// ResumeReconcileEvery is the least time between a full reconcile and
	// the next resume's: a stream that keeps failing on one change must not
	// reconcile all of SpiceDB on every retry. A resume into an empty
	// SpiceDB reconciles regardless.
	ResumeReconcileEvery time.Duration
	// WriteTimeout bounds one write to the target.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registry     prometheus.Registerer
}

// Defaults for Config's zero values.
const (
	DefaultPublication       = "tenantgate"
	DefaultSlot              = "tenantgate"
	DefaultStatusInterval    = 10 * time.Second
	DefaultFlushDelay        = 20 * time.Millisecond
	DefaultHeartbeatInterval = time.Minute
	DefaultStandbyPoll       = time.Second
	DefaultWriteTimeout      = 30 * time.Second
	// DefaultResumeReconcileEvery lets a process that retries a failing
	// stream reconcile at most every quarter hour.
	DefaultResumeReconcileEvery = 15 * time.Minute
)

func (c Config) withDefaults() Config {
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{
		{&c.StatusInterval, DefaultStatusInterval},
		{&c.FlushDelay, DefaultFlushDelay},
		{&c.HeartbeatInterval, DefaultHeartbeatInterval},
		{&c.StandbyPoll, DefaultStandbyPoll},
		{&c.WriteTimeout, DefaultWriteTimeout},
		{&c.ResumeReconcileEvery, DefaultResumeReconcileEvery},
	}
	for _, d := range defaults {
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return c
}

// Syncer mirrors Postgres into a Target. Run it once at a time; it is safe to
// ask for its state from other goroutines while it runs.
type Syncer struct {
	cfg     Config
	src     source
	target  Target
	metrics *metrics

	ready atomic.Bool
	mu    sync.Mutex
	token string
	// applied is the position up to which every transaction is in the
	// target; appliedWake, while someone waits in AwaitApplied, is closed
	// and dropped when applied advances. wal reads waiters' positions.
	applied     authz.LSN
	appliedWake chan struct{}
	wal         wal.Geometry
	state       pgState
	// lastPrune is when the active sync last pruned old checkpoints.
	lastPrune time.Time
	// lastReconcile is when this process last began a full reconcile (zero
	// before the first).
	lastReconcile time.Time
	// readySince is when the current run became ready (zero while it is
	// not); readyFor is how long the last run that ended had been.
	readySince time.Time
	readyFor   time.Duration
	// passwordRefusedSince is when runs began to fail on a refused
	// password, zero while they do not; only Run uses it.
	passwordRefusedSince time.Time
}

// checkpointPruneEvery spaces out checkpoint pruning.
const checkpointPruneEvery = time.Minute

// New prepares a Syncer.
func New(cfg Config, target Target) (*Syncer, error) {
	cfg = cfg.withDefaults()
	if cfg.DatabaseURL == "" {
		return nil, fmt.Errorf("sync: %w: database url is required", authz.ErrInvalid)
	}
	if err := ValidateSlotName(cfg.Slot); err != nil {
		return nil, fmt.Errorf("sync: %w: %w", authz.ErrInvalid, err)
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("sync: metrics: %w", err)
	}
	return &Syncer{cfg: cfg, src: source{url: cfg.DatabaseURL, password: cfg.Password}, target: target, metrics: m}, nil
}

// Ready reports whether the target holds every change committed before the
// stream began, which this run follows: the snapshot and what changed while
// it was copied, or a resumed slot's backlog. Until then a reader could be
// answered from a state older than changes it already knows were made (a
// revocation made during the copy, say), so a gateway waits for it.
func (s *Syncer) Ready() bool { return s.ready.Load() }

// setReady(true) marks the run caught up; setReady(false) ends the run.
func (s *Syncer) setReady(ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ready && s.readySince.IsZero():
		s.readySince = time.Now()
	case !ready:
		s.readyFor = 0
		if !s.readySince.IsZero() {
			s.readyFor, s.readySince = time.Since(s.readySince), time.Time{}
		}
	}
	s.ready.Store(ready)
}

// LastRunReadyFor is how long the last run that ended had been ready
// (caught up and streaming): a run that failed before it caught up, however
// long its snapshot or reconcile took, reports zero, so its retries keep
// backing off.
func (s *Syncer) LastRunReadyFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyFor
}

// noteReconcile records that a full reconcile begins.
func (s *Syncer) noteReconcile(at time.Time) {
	s.mu.Lock()
	s.lastReconcile = at
	s.mu.Unlock()
}

// resumeReconcileDue decides whether a resume reconciles: when this
// process has not reconciled within every. (A process that starts has not.)
func resumeReconcileDue(last, now time.Time, every time.Duration) bool {
	return last.IsZero() || now.Sub(last) >= every
}

// setActive records whether this process follows the stream, caught up or
// not.
func (s *Syncer) setActive(active bool) {
	if active {
		s.metrics.active.Set(1)
	} else {
		s.metrics.active.Set(0)
	}
}

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

// Run follows Postgres until ctx ends (nil) or something fails (an error;
// the Syncer is then not Ready, and Run may be called again). A persistent
// sync first waits to become the active one. A password PostgreSQL refuses
// wraps authz.ErrInvalid, which no retry cures, unless it is read from a
// file (Config.Password) and has been refused for less than passwordGrace:
// a rotation may be under way.
func (s *Syncer) Run(ctx context.Context) error {
	return s.forgiveRefusedPassword(s.run(ctx), time.Now())
}

func (s *Syncer) run(ctx context.Context) error {
	defer s.setActive(false)
	defer s.setReady(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pool, err := openPool(ctx, s.src)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := pgState{pool: pool, slot: s.cfg.Slot}
	var lock *activeLock
	if s.cfg.Persistent {
		lock, err = acquireLock(ctx, s.src, s.cfg.Slot, s.cfg.StandbyPoll, func() {
			s.cfg.Logger.Info("sync: another sync is active; waiting as a hot standby", "slot", s.cfg.Slot)
		})
		if err != nil {
			return err
		}
		defer lock.release(context.WithoutCancel(ctx))
		s.cfg.Logger.Info("sync: active", "slot", s.cfg.Slot)
	} else {
		if st.slot, err = temporarySlotName(); err != nil {
			return err
		}
	}
	s.state = st
	geometry, err := st.walGeometry(ctx)
	if err != nil {
		return err
	}
	s.setWALGeometry(geometry)
	repl, err := connectReplication(ctx, s.src)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))

	start, err := s.prepare(ctx, repl, st)
	if err != nil {
		return err
	}
	// The background loop uses the pool and the slot: it must have ended
	// before Run's deferred closes, whatever the stream's outcome.
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { s.background(bgCtx, st) })
	err = s.stream(ctx, repl, st, lock, start)
	stopBackground()
	background.Wait()
	if ctx.Err() != nil {
		return nil
	}
	s.metrics.streamFailures.Inc()
	return err
}

// prepare decides where the stream starts: from the persistent slot when it
// exists, is healthy and finished its snapshot; otherwise from a new slot
// after a fresh snapshot and a reconcile.
func (s *Syncer) prepare(ctx context.Context, repl *pgconn.PgConn, st pgState) (authz.LSN, error) {
	if !s.cfg.Persistent {
		return s.freshStart(ctx, repl, st, true)
	}
	info, err := st.slotInfo(ctx)
	if err != nil {
		return 0, err
	}
	done, err := st.snapshotDone(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case info.exists && !info.lost && done:
		s.cfg.Logger.Info("sync: resuming from slot", "slot", st.slot)
		if err := s.reconcileOnResume(ctx, st); err != nil {
			return 0, err
		}
		// Zero asks Postgres for the slot's own confirmed position.
		return 0, nil
	case info.lost:
		s.cfg.Logger.Warn("sync: slot lost its WAL (max_slot_wal_keep_size?); starting over with a fresh snapshot", "slot", st.slot)
	case info.exists:
		s.cfg.Logger.Warn("sync: slot's snapshot never completed; starting over", "slot", st.slot)
	}
	if info.exists {
		if err := dropSlot(ctx, repl, st.slot); err != nil {
			return 0, err
		}
	}
	return s.freshStart(ctx, repl, st, false)
}

func noKeepAlive() error { return nil }

// reconcileOnResume reconciles a resumed slot unless this process did so
// recently (see Config.ResumeReconcileEvery) and SpiceDB still holds
// relationships.
func (s *Syncer) reconcileOnResume(ctx context.Context, st pgState) error {
	if !s.cfg.ReconcileOnResume {
		return nil
	}
	s.mu.Lock()
	last := s.lastReconcile
	s.mu.Unlock()
	due := resumeReconcileDue(last, time.Now(), s.cfg.ResumeReconcileEvery)
	if !due {
		empty, err := s.targetEmpty(ctx)
		if err != nil {
			return err
		}
		due = empty
	}
	if !due {
		s.metrics.reconcileSkips.Inc()
		s.cfg.Logger.Info("sync: resuming without a reconcile; the last one was recent",
			"last_reconcile", last.UTC().Format(time.RFC3339), "every", s.cfg.ResumeReconcileEvery)
		return nil
	}
	_, err := s.reconcile(ctx, st, noKeepAlive)
	return err
}

// background keeps the slot advancing and its WAL retention visible while
// the stream runs.
func (s *Syncer) background(ctx context.Context, st pgState) {
	heartbeat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	retention := time.NewTicker(15 * time.Second)
	defer retention.Stop()
	// At once too, so the gauges mean something from the start.
	s.sampleRetention(ctx, st)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if err := st.heartbeat(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("sync: heartbeat failed", "error", err)
			}
		case <-retention.C:
			s.sampleRetention(ctx, st)
		}
	}
}

// sampleRetention sets the slot's WAL gauges; a failed read keeps the last
// values.
func (s *Syncer) sampleRetention(ctx context.Context, st pgState) {
	status, err := slotStatus(ctx, st.pool, st.slot)
	if err != nil {
		return
	}
	s.metrics.slot.set(status)
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
	s.metrics.batchSize.Observe(float64(len(updates)))
	for _, u := range updates {
		s.metrics.updates.WithLabelValues(opName(u.Op)).Inc()
	}
	s.recordToken(token)
	return nil
}

func opName(op authz.Op) string {
	if op == authz.OpDelete {
		return "delete"
	}
	return "touch"
}

// skip records rows that could not be mapped: logged, counted and kept in
// the dead-letter table, never allowed to stop the sync.
func (s *Syncer) skip(ctx context.Context, rows []skippedRow, lsn authz.LSN) {
	for _, r := range rows {
		s.metrics.skipped.WithLabelValues(r.table).Inc()
		s.cfg.Logger.Warn("sync: row skipped", "table", r.table, "id", r.row["id"], "reason", r.err.Error())
		if err := s.state.deadLetter(ctx, r, lsn); err != nil {
			s.cfg.Logger.Error("sync: could not record dead letter", "error", err)
		}
	}
}

// temporarySlotPrefix starts the names of the snapshot-only slots that die
// with their connection; a persistent slot may not use it, so that nobody
// mistakes one for the other when cleaning up.
const temporarySlotPrefix = "tenantgate_tmp_"

func temporarySlotName() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sync: slot name: %w", err)
	}
	return temporarySlotPrefix + hex.EncodeToString(b), nil
}

// maxSlotName is PostgreSQL's NAMEDATALEN less its terminating byte.
const maxSlotName = 63

// ValidateSlotName reports why PostgreSQL would refuse name as a replication
// slot, or why the sync reserves it. Checked at start, because the server's
// own refusal comes only once the sync streams, and would be retried.
func ValidateSlotName(name string) error {
	switch {
	case name == "":
		return errors.New("the slot name is empty")
	case len(name) > maxSlotName:
		return fmt.Errorf("slot name %q is %d bytes; PostgreSQL allows at most %d", name, len(name), maxSlotName)
	case strings.HasPrefix(name, temporarySlotPrefix):
		return fmt.Errorf("slot name %q starts with %q, which names the sync's temporary snapshot slots", name, temporarySlotPrefix)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("slot name %q may hold only lower-case letters, digits and underscores (PostgreSQL's rule)", name)
		}
	}
	return nil
}
