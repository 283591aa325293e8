package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/schema"
)

// spiceDB is the SpiceDB the command talks to, with the schema written.
type spiceDB struct {
	*spicedb.Client
	embedded bool
	stop     func(context.Context) error
}

// openSpiceDB connects to the remote SpiceDB, or starts one in-process when
// no endpoint is configured, and installs tenantgate's schema.
func openSpiceDB(ctx context.Context, cfg Config, logger *slog.Logger, opts ...spicedb.Option) (*spiceDB, error) {
	var s *spiceDB
	if cfg.SpiceDBEndpoint != "" {
		c, err := spicedb.Dial(spicedb.RemoteConfig{
			Endpoint:        cfg.SpiceDBEndpoint,
			Token:           cfg.SpiceDBToken,
			Insecure:        cfg.SpiceDBInsecure,
			CACertPath:      cfg.SpiceDBCACert,
			DatastoreEngine: cfg.SpiceDBDatastoreEngine,
		}, opts...)
		if err != nil {
			return nil, err
		}
		s = &spiceDB{Client: c, stop: func(context.Context) error { return c.Close() }}
	} else {
		e, err := spicedb.StartEmbedded(ctx, spicedb.EmbeddedConfig{DatastoreURL: cfg.SpiceDBDatastoreURL, Logger: logger}, opts...)
		if err != nil {
			return nil, err
		}
		s = &spiceDB{Client: e.Client, embedded: true, stop: e.Stop}
	}
	if err := s.WriteSchema(ctx, schema.Schema); err != nil {
		_ = s.stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("install schema: %w", err)
	}
	return s, nil
}
