package app

import (
	"context"
	"log/slog"

	"github.com/tenantgate/tenantgate/internal/store"
)

// Migrate creates or upgrades tenantgate's tables, triggers and publication
// in the application's Postgres. It is idempotent and safe to run
// concurrently.
func Migrate(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	return store.Migrate(ctx, cfg.DatabaseURL, logger)
}
