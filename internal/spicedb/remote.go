package spicedb

import (
	"cmp"
	"context"
	"fmt"
	"time"

	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// RemoteConfig locates a SpiceDB cluster.
type RemoteConfig struct {
	// Endpoint is host:port of SpiceDB's gRPC API.
	Endpoint string
	// Token is SpiceDB's preshared key, sent as a bearer token on every call.
	Token string
	// CurrentToken, when set, is asked for the key on every call instead
	// of Token, so that a rotated key is sent without a restart.
	CurrentToken func() string
	// Insecure dials without TLS, for a cluster on a trusted local network.
	Insecure bool
	// CACertPath optionally names a PEM bundle to trust instead of the
	// system's certificates.
	CACertPath string
	// DatastoreEngine is the engine of the cluster's datastore (SpiceDB's
	// name: postgres, cockroachdb, ...; empty: DefaultDatastoreEngine),
	// whose revisions the client must read to tell which of two ZedTokens
	// is fresher.
	DatastoreEngine string
}

// DefaultDatastoreEngine is the datastore of a remote SpiceDB unless told
// otherwise: the one tenantgate's deployments run it on.
const DefaultDatastoreEngine = "postgres"

// Dial connects to a remote SpiceDB. The connection is lazy: a cluster that
// is down surfaces as ErrUnavailable on the first call, not here.
func Dial(cfg RemoteConfig, opts ...Option) (*Client, error) {
	revisions, err := parserFor(cmp.Or(cfg.DatastoreEngine, DefaultDatastoreEngine))
	if err != nil {
		return nil, err
	}
	dialOpts, err := dialOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("spicedb: dial %s: %w", cfg.Endpoint, err)
	}
	c := newClient(revisions, opts...)
	conn, err := authzed.NewClient(cfg.Endpoint, append(dialOpts, c.dialOptions()...)...)
	if err != nil {
		return nil, fmt.Errorf("spicedb: dial %s: %w", cfg.Endpoint, err)
	}
	c.connect(conn, conn)
	return c, nil
}

// reconnect is how the connection comes back after SpiceDB was away.
// gRPC's default backoff grows to two minutes, which would keep a gateway
// answering 503 for that long after a long outage ended; a few seconds
// bounds the recovery while sparing a SpiceDB that is starting up.
var reconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff: backoff.Config{
		BaseDelay:  250 * time.Millisecond,
		Multiplier: 1.6,
		Jitter:     0.2,
		MaxDelay:   5 * time.Second,
	},
	MinConnectTimeout: 5 * time.Second,
})

func dialOptions(cfg RemoteConfig) ([]grpc.DialOption, error) {
	if cfg.Insecure {
		return []grpc.DialOption{
			reconnect,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer{token: currentToken(cfg)}),
		}, nil
	}
	var (
		certs grpc.DialOption
		err   error
	)
	if cfg.CACertPath != "" {
		certs, err = grpcutil.WithCustomCerts(grpcutil.VerifyCA, cfg.CACertPath)
	} else {
		certs, err = grpcutil.WithSystemCerts(grpcutil.VerifyCA)
	}
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return []grpc.DialOption{reconnect, certs, grpc.WithPerRPCCredentials(bearer{token: currentToken(cfg), secure: true})}, nil
}

func currentToken(cfg RemoteConfig) func() string {
	if cfg.CurrentToken != nil {
		return cfg.CurrentToken
	}
	return func() string { return cfg.Token }
}

// bearer sends SpiceDB's preshared key as it is when each call is made
// (grpcutil's bearer credentials keep the key they were built with).
type bearer struct {
	token  func() string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token()}, nil
}

// RequireTransportSecurity refuses to send the key in clear unless the
// connection was dialled insecure on purpose.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
