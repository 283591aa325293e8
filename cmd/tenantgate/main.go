// Command tenantgate answers "may this user do P on company C" for
// multi-tenant applications, from memberships kept in their own PostgreSQL.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tenantgate:", err)
		os.Exit(1)
	}
}

// runFunc is the shape of every command in package app.
type runFunc func(ctx context.Context, cfg app.Config, logger *slog.Logger) error

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tenantgate",
		Short:         "Relationship-based authorization for multi-tenant SaaS, synced from your Postgres into SpiceDB",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		command("serve", "Run the REST permission gateway (and, with embedded SpiceDB, the sync)", app.Serve),
		command("sync", "Run the Postgres -> SpiceDB membership sync against a persistent SpiceDB", app.Sync),
		command("migrate", "Create or upgrade tenantgate's tables and publication in the application database", app.Migrate),
		command("doctor", "Check Postgres, SpiceDB and the key set for what sync and serve need, each failure with its fix; --metrics prints the slot's gauges", func(ctx context.Context, cfg app.Config, logger *slog.Logger) error {
			return app.Doctor(ctx, cfg, logger, os.Stdout)
		}),
		command("demo", "Run everything on sample data and print ready-to-paste curl commands", func(ctx context.Context, cfg app.Config, logger *slog.Logger) error {
			return app.Demo(ctx, cfg, logger, os.Stdout)
		}),
		command("explain", "Ask a running gateway why a user may or may not do a permission on a company", func(ctx context.Context, cfg app.Config, logger *slog.Logger) error {
			return app.Explain(ctx, cfg, logger, os.Stdout)
		}),
		command("bench", "Measure the gateway against a floor, plain SQL and SpiceDB on generated data; print a markdown table, write an SVG chart", func(ctx context.Context, cfg app.Config, logger *slog.Logger) error {
			return app.Bench(ctx, cfg, logger, os.Stdout)
		}),
	)
	// The floor is a process bench starts, not a command for users.
	floor := command(app.BenchFloorCommand, "Serve the bench's floor: checks answered from memory behind the gateway's JWT verification", app.BenchFloor)
	floor.Hidden = true
	root.AddCommand(floor)
	return root
}

func command(name, short string, run runFunc) *cobra.Command {
	cfg := app.Default()
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := app.ApplyEnv(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			return run(cmd.Context(), cfg, cfg.NewLogger())
		},
	}
	app.BindFlags(cmd.Flags(), &cfg)
	return cmd
}
