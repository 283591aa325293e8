package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/spicedb"
)

// preflightTimeout bounds each dependency's checks, so that a server that
// never answers fails its check instead of holding the others.
const preflightTimeout = 15 * time.Second

// report is the outcome of every preflight check, in order.
type report struct {
	OK     bool           `json:"ok"`
	Checks []mirror.Check `json:"checks"`
}

// err is nil when no check failed; otherwise every failure with its fix,
// wrapped in authz.ErrInvalid unless each failure is one a retry may cure.
func (r report) err() error {
	var failed []string
	transient := true
	for _, c := range r.Checks {
		if c.Status != mirror.StatusFail {
			continue
		}
		failed = append(failed, fmt.Sprintf("%s: %s (fix: %s)", c.Name, c.Detail, c.Fix))
		transient = transient && c.Transient
	}
	if len(failed) == 0 {
		return nil
	}
	msg := strings.Join(failed, "; ")
	if transient {
		return fmt.Errorf("preflight: %w: %s", authz.ErrUnavailable, msg)
	}
	return fmt.Errorf("preflight: %w: %s", authz.ErrInvalid, msg)
}

// preflight checks what the sync and the gateway need of Postgres, SpiceDB
// and the key set, each with the fix when it is wrong. The error is
// report.err: authz.ErrInvalid when a fix is needed, so startup can stop
// instead of retrying.
func preflight(ctx context.Context, cfg Config, logger *slog.Logger) (report, error) {
	var checks []mirror.Check
	checks = append(checks, postgresChecks(ctx, cfg)...)
	checks = append(checks, spiceDBCheck(ctx, cfg), watchCheck(ctx, cfg), jwksCheck(ctx, cfg, logger))
	r := report{Checks: checks}
	err := r.err()
	r.OK = err == nil
	return r, err
}

func postgresChecks(ctx context.Context, cfg Config) []mirror.Check {
	if err := cfg.requireDatabase(); err != nil {
		return []mirror.Check{{Name: "postgres", Status: mirror.StatusFail, Detail: err.Error(), Fix: "set --database-url"}}
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	// The memory datastore's sync streams from a temporary slot of a
	// random name: --sync-slot names nothing it uses.
	slot := cfg.SyncSlot
	if !cfg.persistentSpiceDB() {
		slot = ""
	}
	return mirror.CheckReplication(ctx, cfg.DatabaseURL, slot)
}

// checkReplication runs the preflight's Postgres checks at the start of a
// process that runs the sync, retrying what a retry may cure until the
// start's deadline. Without it the sync meets a wrong wal_level or a
// missing publication only once it streams, one at a time, after a
// snapshot it then throws away. Warnings are logged and do not stop it.
func checkReplication(ctx context.Context, s *startup, cfg Config, logger *slog.Logger) error {
	checks, err := retryStartup(ctx, s, "postgres preflight", func(ctx context.Context) ([]mirror.Check, error) {
		checks := postgresChecks(ctx, cfg)
		return checks, report{Checks: checks}.err()
	})
	if err != nil {
		return err
	}
	for _, c := range checks {
		if c.Status == mirror.StatusWarn {
			logger.WarnContext(ctx, "preflight: "+c.Detail, "check", c.Name, "fix", c.Fix)
		}
	}
	return nil
}

// spiceDBCheck reaches a remote SpiceDB with the token; an embedded one
// runs in the process and has nothing to reach.
func spiceDBCheck(ctx context.Context, cfg Config) mirror.Check {
	c := mirror.Check{Name: "spicedb", Status: mirror.StatusOK}
	if cfg.SpiceDBEndpoint == "" {
		c.Status, c.Detail = mirror.StatusSkip, "embedded SpiceDB: nothing to reach"
		return c
	}
	if err := probeRemote(ctx, cfg, (*spicedb.Client).Probe); err != nil {
		return failedCheck(c, err, "set --spicedb-token to a preshared key SpiceDB was started with",
			"check --spicedb-endpoint, TLS (--spicedb-insecure, --spicedb-ca-cert) and that SpiceDB is up")
	}
	c.Detail = "SpiceDB at " + cfg.SpiceDBEndpoint + " answers with the token"
	return c
}

// watchFix is what to do when SpiceDB cannot stream changes.
const watchFix = "set track_commit_timestamp = on on SpiceDB's Postgres datastore and restart it (until then the permission index is off, and every read goes to SpiceDB), or run serve with --index=false"

// watchCheck tells whether SpiceDB streams changes, which the permission
// index follows: without it the gateway is still right, only slower, so a
// failure is a warning.
func watchCheck(ctx context.Context, cfg Config) mirror.Check {
	c := mirror.Check{Name: "spicedb watch", Status: mirror.StatusOK}
	if !cfg.Index {
		c.Status, c.Detail = mirror.StatusSkip, "--index=false: nothing follows SpiceDB's Watch"
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	var err error
	switch {
	case cfg.SpiceDBEndpoint != "":
		c.Detail = "SpiceDB streams changes (Watch)"
		err = probeRemote(ctx, cfg, (*spicedb.Client).ProbeWatch)
	case cfg.SpiceDBDatastoreURL != "":
		c.Detail = "the datastore has track_commit_timestamp = on"
		err = checkCommitTimestamps(ctx, cfg.SpiceDBDatastoreURL)
	default:
		c.Status, c.Detail = mirror.StatusSkip, "memory datastore: Watch needs nothing"
		return c
	}
	switch {
	case errors.Is(err, spicedb.ErrWatchUnavailable):
		c.Status, c.Detail, c.Fix = mirror.StatusWarn, err.Error(), watchFix
	case err != nil:
		// The spicedb or postgres check says why it cannot be reached.
		c.Status, c.Detail = mirror.StatusSkip, "not probed: "+err.Error()
	}
	return c
}

// probeRemote runs probe on a connection of its own to the remote SpiceDB,
// within the preflight's deadline.
func probeRemote(ctx context.Context, cfg Config, probe func(*spicedb.Client, context.Context) error) error {
	client, err := spicedb.Dial(spicedb.RemoteConfig{
		Endpoint: cfg.SpiceDBEndpoint, Token: cfg.SpiceDBToken, Insecure: cfg.SpiceDBInsecure,
		CACertPath: cfg.SpiceDBCACert, DatastoreEngine: cfg.SpiceDBDatastoreEngine,
	})
	if err != nil {
		return err
	}
	defer client.Close() //nolint:errcheck // a probe's connection
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	return probe(client, ctx)
}

// checkCommitTimestamps reads the setting SpiceDB's Postgres datastore
// needs for Watch.
func checkCommitTimestamps(ctx context.Context, datastoreURL string) error {
	conn, err := pgx.Connect(ctx, datastoreURL)
	if err != nil {
		return fmt.Errorf("datastore: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var on string
	if err := conn.QueryRow(ctx, "SHOW track_commit_timestamp").Scan(&on); err != nil {
		return fmt.Errorf("datastore: %w", err)
	}
	if on != "on" {
		return fmt.Errorf("%w: the datastore has track_commit_timestamp = %s", spicedb.ErrWatchUnavailable, on)
	}
	return nil
}

// jwksCheck reads the key set as the gateway does, which fails when it
// holds no usable signing key.
func jwksCheck(ctx context.Context, cfg Config, logger *slog.Logger) mirror.Check {
	c := mirror.Check{Name: "jwks", Status: mirror.StatusOK}
	source := cmp.Or(cfg.JWKSURL, cfg.JWKSFile)
	if source == "" {
		c.Status, c.Detail = mirror.StatusSkip, "no --jwks-url or --jwks-file (the sync needs none; serve does)"
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	if _, err := identity.New(ctx, cfg.identityConfig(logger)); err != nil {
		return failedCheck(c, err, "make --jwks-url or --jwks-file a JSON Web Key Set with RSA, EC or Ed25519 signing keys, and set --issuer and --audience",
			"check that --jwks-url is reachable over https and answers 200")
	}
	c.Detail = "the key set at " + source + " holds usable signing keys"
	return c
}

// failedCheck records err on c, with invalidFix when no retry can cure it
// (it wraps authz.ErrInvalid) and transientFix otherwise.
func failedCheck(c mirror.Check, err error, invalidFix, transientFix string) mirror.Check {
	c.Status, c.Detail, c.Fix = mirror.StatusFail, err.Error(), invalidFix
	if !errors.Is(err, authz.ErrInvalid) {
		c.Fix, c.Transient = transientFix, true
	}
	return c
}

// Doctor runs the preflight checks and prints them to w, as text or, with
// --json, as JSON; with --metrics it prints the slot's gauges instead. It
// fails when any check fails; warnings do not.
func Doctor(ctx context.Context, cfg Config, logger *slog.Logger, w io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Metrics {
		if err := cfg.requireDatabase(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
		defer cancel()
		return mirror.WriteSlotMetrics(ctx, w, cfg.DatabaseURL, cfg.SyncSlot)
	}
	r, err := preflight(ctx, cfg, logger)
	if printErr := printReport(w, r, cfg.JSON); printErr != nil {
		return printErr
	}
	return err
}

func printReport(w io.Writer, r report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-5s %s: %s\n", strings.ToUpper(string(c.Status)), c.Name, c.Detail)
		if c.Fix != "" && c.Status != mirror.StatusOK {
			fmt.Fprintf(&b, "      fix: %s\n", c.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
