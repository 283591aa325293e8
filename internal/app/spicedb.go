package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/schema"
)

// errSchemaBehind says SpiceDB does not hold the schema this tenantgate
// needs yet. It is transient, so the start retries it until
// --startup-timeout: `tenantgate migrate` may be running now.
var errSchemaBehind = errors.New("run tenantgate migrate")

// spiceDB is the SpiceDB the command talks to.
type spiceDB struct {
	*spicedb.Client
	embedded bool
	stop     func(context.Context) error
}

// persistentSpiceDB reports whether cfg names a SpiceDB that outlives the
// process, whose schema `tenantgate migrate` owns.
func (c Config) persistentSpiceDB() bool {
	return c.SpiceDBEndpoint != "" || c.SpiceDBDatastoreURL != ""
}

// openSpiceDB connects to SpiceDB and makes sure it holds a schema this
// tenantgate runs over. Only a memory datastore gets the schema written
// here, since nothing else can reach it; a persistent SpiceDB is migrated
// by `tenantgate migrate` and only checked here, so that a rollback never
// rewrites a newer schema with an older one.
func openSpiceDB(ctx context.Context, cfg Config, logger *slog.Logger, opts ...spicedb.Option) (*spiceDB, error) {
	s, err := dialSpiceDB(ctx, cfg, logger, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.persistentSpiceDB() {
		err = checkSchema(ctx, s)
	} else if err = s.WriteSchema(ctx, schema.Schema); err != nil {
		err = fmt.Errorf("install schema: %w", err)
	}
	if err != nil {
		_ = s.stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// dialSpiceDB connects to the remote SpiceDB, or starts one in-process when
// no endpoint is configured.
func dialSpiceDB(ctx context.Context, cfg Config, logger *slog.Logger, opts ...spicedb.Option) (*spiceDB, error) {
	if cfg.SpiceDBEndpoint == "" {
		e, err := spicedb.StartEmbedded(ctx, spicedb.EmbeddedConfig{DatastoreURL: cfg.SpiceDBDatastoreURL, Logger: logger}, opts...)
		if err != nil {
			return nil, err
		}
		return &spiceDB{Client: e.Client, embedded: true, stop: e.Stop}, nil
	}
	c, err := spicedb.Dial(spicedb.RemoteConfig{
		Endpoint:        cfg.SpiceDBEndpoint,
		Token:           cfg.SpiceDBToken,
		CurrentToken:    cfg.currentSpiceDBToken(),
		Insecure:        cfg.SpiceDBInsecure,
		CACertPath:      cfg.SpiceDBCACert,
		DatastoreEngine: cfg.SpiceDBDatastoreEngine,
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &spiceDB{Client: c, stop: func(context.Context) error { return c.Close() }}, nil
}

// checkSchema reports whether SpiceDB's schema serves this tenantgate, as
// schemaServes says.
func checkSchema(ctx context.Context, s *spiceDB) error {
	have, err := readStamp(ctx, s)
	if err != nil {
		return err
	}
	return schemaServes(have)
}

// schemaServes reports whether a schema stamped have serves this
// tenantgate: errSchemaBehind if it is missing or older, authz.ErrInvalid
// if it is newer and has contracted away something this version uses,
// which only rolling tenantgate forward fixes. A newer schema that only
// expanded serves, which is what lets a rollback run.
func schemaServes(have schema.Stamp) error {
	switch {
	case have.Version < schema.Version:
		return fmt.Errorf("schema: SpiceDB holds schema version %d, older than the %d this tenantgate needs: %w", have.Version, schema.Version, errSchemaBehind)
	case !have.Serves(schema.Version):
		return fmt.Errorf("schema: %w: SpiceDB holds schema version %d, newer than this tenantgate's %d and no longer compatible with it (it supports versions %d and later): roll tenantgate forward (see Upgrades in docs/operations.md)",
			authz.ErrInvalid, have.Version, schema.Version, have.OldestCompatible)
	}
	return nil
}

// readStamp reads the version of the schema SpiceDB holds, version 0 for
// none or for one written before schemas carried versions.
func readStamp(ctx context.Context, s *spiceDB) (schema.Stamp, error) {
	text, err := s.ReadSchema(ctx)
	if err != nil {
		return schema.Stamp{}, err
	}
	stamp, _, err := schema.ParseStamp(text)
	return stamp, err
}
