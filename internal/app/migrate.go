package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/schema"
)

// Migrate creates or upgrades tenantgate's tables, triggers and publication
// in the application's Postgres when --database-url is set, and
// tenantgate's schema in SpiceDB when a persistent SpiceDB is configured
// (--spicedb-endpoint or --spicedb-datastore-url). It is idempotent and
// safe to run concurrently.
func Migrate(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg, err := cfg.withSecretFiles()
	if err != nil {
		return err
	}
	if !cfg.persistentSpiceDB() {
		if err := cfg.requireDatabase(); err != nil {
			return err
		}
	}
	if cfg.DatabaseURL != "" {
		if err := store.Migrate(ctx, cfg.DatabaseURL, logger); err != nil {
			return err
		}
	}
	if cfg.persistentSpiceDB() {
		return migrateSpiceDB(ctx, cfg, logger)
	}
	return nil
}

// migrateSpiceDB writes tenantgate's schema when SpiceDB holds an older one
// or none. It never writes over a newer version: that is a rollback of
// tenantgate, whose processes run over the newer schema as long as it only
// expanded, and must be rolled forward otherwise (docs/operations.md,
// Upgrades).
func migrateSpiceDB(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := dialSpiceDB(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer s.stop(context.WithoutCancel(ctx)) //nolint:errcheck // the result is decided
	have, err := readStamp(ctx, s)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := schemaServes(have); !errors.Is(err, errSchemaBehind) {
		if err != nil {
			return fmt.Errorf("migrate: refusing to write schema version %d: %w", schema.Version, err)
		}
		logger.Info("SpiceDB schema serves this tenantgate; left as it is", "version", have.Version, "this_version", schema.Version)
		return nil
	}
	if err := s.WriteSchema(ctx, schema.Schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.Info("wrote SpiceDB schema", "from_version", have.Version, "to_version", schema.Version)
	return nil
}
