package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/loadbench"
)

// The floor verifies tokens exactly as the gateway does.
var _ loadbench.Authenticator = (*identity.Verifier)(nil)

// BenchFloorCommand is the hidden command Bench starts for the floor.
const BenchFloorCommand = loadbench.FloorCommand

// Bench compares the gateway with a floor, plain SQL and SpiceDB on a
// generated data set in a throwaway PostgreSQL, every system a process of
// its own; it prints a markdown table to out and writes an SVG chart
// (docs/benchmarks.md). One wrong answer fails it.
func Bench(ctx context.Context, cfg Config, logger *slog.Logger, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	bc, err := cfg.validateBench()
	if err != nil {
		return err
	}
	return loadbench.Run(ctx, bc, logger, out)
}

// validateBench checks the bench flags and returns them as the harness's
// configuration.
func (c Config) validateBench() (loadbench.Config, error) {
	var errs []error
	systems, err := loadbench.ParseSystems(c.BenchSystems)
	if err != nil {
		errs = append(errs, fmt.Errorf("--bench-systems: %w", err))
	}
	listSizes, err := loadbench.ParseCounts(c.BenchListSizes)
	if err != nil {
		errs = append(errs, fmt.Errorf("--bench-list-sizes: %w", err))
	}
	indexSizes, err := loadbench.ParseCounts(c.BenchIndexSizes)
	if err != nil {
		errs = append(errs, fmt.Errorf("--bench-index-sizes: %w", err))
	}
	if c.BenchSeed < 0 {
		errs = append(errs, errors.New("--bench-seed must not be negative"))
	}
	bc := loadbench.Config{
		Systems: systems,
		Sizes: loadbench.Sizes{Companies: c.BenchCompanies, Depth: c.BenchDepth, Users: c.BenchUsers,
			Memberships: c.BenchMemberships, ListSizes: listSizes, Seed: uint64(c.BenchSeed)},
		Checks: c.BenchChecks, CheckUsers: c.BenchCheckUsers, Clients: c.BenchClients, BulkSize: c.BenchBulkSize,
		ListRepeats: c.BenchListRepeats, Budget: c.BenchDuration, LagRate: c.BenchLagRate, LagDuration: c.BenchLagDuration,
		IndexSizes: indexSizes, ChartPath: c.BenchChart, LogDir: c.BenchLogDir,
		SpiceDBBin: c.BenchSpiceDBBin, TenantgateBin: c.BenchTenantgateBin,
	}
	if err := bc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if loadbench.NeedsSpiceDB(systems) {
		if bc.SpiceDBBin, err = exec.LookPath(c.BenchSpiceDBBin); err != nil {
			errs = append(errs, fmt.Errorf("--bench-spicedb-bin %q: %w; build it with `go build -o bin/spicedb github.com/authzed/spicedb/cmd/spicedb` and pass --bench-spicedb-bin bin/spicedb, or leave spicedb and remote out of --bench-systems", c.BenchSpiceDBBin, err))
		}
	}
	if bc.TenantgateBin == "" {
		if bc.TenantgateBin, err = os.Executable(); err != nil {
			errs = append(errs, fmt.Errorf("--bench-tenantgate-bin: this binary's path: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return loadbench.Config{}, fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	return bc, nil
}

// BenchFloor serves the floor Bench measures every system against: POST
// /v1/check answered from memory, behind the gateway's JWT verification.
// Bench starts it as a process of its own (BenchFloorCommand).
func BenchFloor(ctx context.Context, cfg Config, logger *slog.Logger) error {
	for _, check := range []func() error{cfg.Validate, cfg.requireDatabase, cfg.requireIdentity} {
		if err := check(); err != nil {
			return err
		}
	}
	verifier, err := identity.New(ctx, cfg.identityConfig(logger))
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	handler, err := loadbench.FloorHandler(ctx, cfg.DatabaseURL, verifier, logger)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, newInternalServer(cfg.HTTPAddr, handler), cfg.Listener, cfg.ShutdownTimeout, logger)
}

// identityConfig is how the gateway verifies user tokens.
func (c Config) identityConfig(logger *slog.Logger) identity.Config {
	return identity.Config{
		JWKSURL: c.JWKSURL, JWKSFile: c.JWKSFile,
		Issuer: c.Issuer, Audience: c.Audience, SubjectClaim: c.SubjectClaim,
		TokenUse: c.TokenUse, TokenType: c.TokenType,
		GroupsClaim: c.GroupsClaim,
		Logger:      logger,
	}
}
