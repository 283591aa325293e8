package spicedb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/grpcutil"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/cmd/server"
	"github.com/authzed/spicedb/pkg/cmd/util"
	"github.com/authzed/spicedb/pkg/datastore/migration"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// EmbeddedConfig describes a SpiceDB server run inside this process.
type EmbeddedConfig struct {
	// DatastoreURL selects SpiceDB's Postgres datastore (migrated to head at
	// start); empty selects the memory datastore, which starts empty and is
	// meant for the demo and tests.
	DatastoreURL string
	// MigrationTimeout bounds the datastore migration.
	MigrationTimeout time.Duration
	Logger           *slog.Logger
}

// Embedded is a running in-process SpiceDB and a client connected to it over
// an in-memory network.
type Embedded struct {
	*Client
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	stopErr  error
}

// StartEmbedded starts SpiceDB in this process. Call Stop to shut it down.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig, opts ...Option) (*Embedded, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	engine := datastore.MemoryEngine
	if cfg.DatastoreURL != "" {
		engine = datastore.PostgresEngine
		if err := migrate(ctx, cfg); err != nil {
			return nil, err
		}
	}
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	srv, err := server.NewConfigWithOptionsAndDefaults(
		server.WithDatastoreConfig(*datastore.NewConfigWithOptionsAndDefaults(
			datastore.WithEngine(engine),
			datastore.WithURI(cfg.DatastoreURL),
		)),
		server.WithPresharedSecureKey(key),
		// The permission index follows Watch; 0 lets the Postgres
		// datastore look for changes at its minimum interval (100 ms)
		// instead of the default 1 s, which would be the index's lag.
		server.WithWatchHeartbeat(0),
		server.WithGRPCServer(util.GRPCServerConfig{Network: util.BufferedNetwork, Enabled: true}),
		server.WithHTTPGateway(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithMetricsAPI(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithDispatchServer(util.GRPCServerConfig{Enabled: false}),
		server.WithTelemetryEndpoint(""),
		server.WithSilentlyDisableTelemetry(true),
	).Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("spicedb: embedded %s datastore: %w", engine, err)
	}
	revisions, err := parserFor(engine)
	if err != nil {
		return nil, err
	}
	c := newClient(revisions, opts...)
	conn, err := srv.NewClient(append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpcutil.WithInsecureBearerToken(key),
	}, c.dialOptions()...)...)
	if err != nil {
		return nil, fmt.Errorf("spicedb: embedded client: %w", err)
	}
	c.connect(connServices{
		PermissionsServiceClient: v1.NewPermissionsServiceClient(conn),
		SchemaServiceClient:      v1.NewSchemaServiceClient(conn),
		WatchServiceClient:       v1.NewWatchServiceClient(conn),
	}, conn)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &Embedded{
		Client: c,
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { e.done <- srv.Run(runCtx) }()
	logger.Info("embedded spicedb started", "datastore", engine)
	return e, nil
}

// connServices are the APIs of one connection.
type connServices struct {
	v1.PermissionsServiceClient
	v1.SchemaServiceClient
	v1.WatchServiceClient
}

// Stop shuts the server down and waits for it, bounded by ctx. Later calls
// return the first call's result.
func (e *Embedded) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *Embedded) stop(ctx context.Context) error {
	e.cancel()
	closeErr := e.Client.Close()
	select {
	case err := <-e.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("spicedb: embedded server: %w", err)
		}
		return closeErr
	case <-ctx.Done():
		return fmt.Errorf("spicedb: stop embedded server: %w", ctx.Err())
	}
}

func migrate(ctx context.Context, cfg EmbeddedConfig) error {
	timeout := cfg.MigrationTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	err := migration.Run(ctx, &migration.Config{
		DatastoreEngine: datastore.PostgresEngine,
		DatastoreURI:    cfg.DatastoreURL,
		Timeout:         timeout,
		BatchSize:       1000,
	}, "head")
	if err != nil {
		return fmt.Errorf("spicedb: migrate datastore: %w", err)
	}
	return nil
}

// randomKey makes the preshared key of an embedded server: nothing outside
// this process can reach it, but SpiceDB requires one and it must not be a
// guessable constant.
func randomKey() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("spicedb: preshared key: %w", err)
	}
	return hex.EncodeToString(b), nil
}
