package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// MaxDepth is the most levels a company tree may have: a root alone is one
// level, so a chain of MaxDepth companies is the deepest allowed. The trigger
// of migration 1 enforces it (its max_depth must stay equal); SpiceDB's
// dispatch limit of 50 is the reason for the bound.
const MaxDepth = 40

const (
	// schemaName holds what tenantgate itself owns in the application's
	// database: goose's version table and the tree guard function.
	schemaName = "tenantgate"
	// versionTable is not goose's default goose_db_version, which an
	// application using goose for its own schema already has.
	versionTable = schemaName + ".schema_migrations"
	// migrationLockID is the advisory lock key ("tenant" in ASCII) that
	// serialises concurrent migrate runs; goose's default key would make us
	// wait for, or block, an application's own goose runs.
	migrationLockID int64 = 0x74656e616e74
	// lockWaitSeconds bounds the wait for another migrate run to finish.
	lockWaitSeconds = 300
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies the embedded migrations that are not applied yet and logs
// each one; on an up-to-date database it changes nothing. Concurrent runs
// against one database are safe: they take turns on an advisory lock.
func Migrate(ctx context.Context, databaseURL string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	// goose speaks database/sql; the pgx driver keeps one implementation
	// of the wire protocol and of error types.
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	if err := createSchema(ctx, db); err != nil {
		return fmt.Errorf("migrate: %w", refusedForGood(translate(err)))
	}
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID),
		// Poll every second: the goose default of five would make every
		// second concurrent run wait that long.
		lock.WithLockTimeout(1, lockWaitSeconds),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(locker),
		// Go migrations registered globally by any imported package are not ours.
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := provider.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
	}
	for _, r := range results {
		logger.InfoContext(ctx, "applied migration",
			slog.Int64("version", r.Source.Version),
			slog.String("file", path.Base(r.Source.Path)),
			slog.Duration("duration", r.Duration))
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	version, err := provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	logger.InfoContext(ctx, "database schema up to date", slog.Int64("version", version))
	warnWALLevel(ctx, db, logger)
	return nil
}

// warnWALLevel warns when the server cannot feed the sync: the publication
// is made either way, but `tenantgate sync` would refuse to start.
func warnWALLevel(ctx context.Context, db *sql.DB, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var level string
	if err := db.QueryRowContext(ctx, `SELECT current_setting('wal_level')`).Scan(&level); err != nil {
		logger.WarnContext(ctx, "could not read wal_level", slog.Any("error", err))
		return
	}
	if level != "logical" {
		logger.WarnContext(ctx, "wal_level is not logical: tenantgate sync cannot stream changes; set wal_level = logical and restart PostgreSQL (AWS RDS/Aurora: rds.logical_replication = 1), then run `tenantgate doctor`",
			slog.String("wal_level", level))
	}
}

// createSchema makes the schema goose's version table lives in, which goose
// will not create. Two first runs would race on CREATE SCHEMA IF NOT EXISTS
// (it is not atomic), so it takes the migration lock too, for the length of
// one transaction; while another run holds that lock for its migrations, this
// waits for it, bounded like the goose lock.
func createSchema(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	// After Commit this is a no-op, and after a failure the error that
	// matters is the one returned below.
	defer func() { _ = tx.Rollback() }()
	stmts := []struct {
		sql  string
		args []any
	}{
		{fmt.Sprintf("set local lock_timeout = '%ds'", lockWaitSeconds), nil},
		{"select pg_advisory_xact_lock($1)", []any{migrationLockID}},
		{"create schema if not exists " + schemaName, nil},
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}
