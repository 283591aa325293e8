package testutil

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

const (
	// spicedbTimeout bounds migrating, starting and stopping SpiceDB when
	// the caller's context has no earlier deadline.
	spicedbTimeout = 60 * time.Second
	// spicedbStartAttempts covers another process taking the free port
	// between our probe and SpiceDB's bind.
	spicedbStartAttempts = 3
	// healthCallTimeout bounds one readiness probe, so that a server that
	// accepts TCP but never answers cannot use up a whole wait.
	healthCallTimeout = 2 * time.Second
)

// SpiceDBOptions configure StartSpiceDB.
type SpiceDBOptions struct {
	// DatastoreURL is the postgres:// URL of SpiceDB's own database, which
	// StartSpiceDB migrates. Required.
	DatastoreURL string
	// Logger receives the server's lifecycle; nil discards.
	Logger *slog.Logger
	// ExtraKeys are preshared keys the server accepts besides Token, as
	// during a rotation of the key.
	ExtraKeys []string
}

// SpiceDB is a real `spicedb serve` process on a Postgres datastore,
// listening for plaintext gRPC on 127.0.0.1 and authenticating clients with
// a random preshared key. Since its data lives in Postgres, it can be killed
// and started again to simulate an outage.
type SpiceDB struct {
	logger       *slog.Logger
	bin          string
	dir          string
	datastoreURL string
	token        string
	extraKeys    []string
	port         int

	mu     sync.Mutex
	proc   *Process // nil while not running
	closed bool
}

// StartSpiceDB builds SpiceDB if needed (BuildSpiceDB), migrates the
// datastore to the latest version, starts the server on a free port and
// returns once it reports serving. Close it with Close.
func StartSpiceDB(ctx context.Context, opts SpiceDBOptions) (*SpiceDB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.DatastoreURL == "" {
		return nil, errors.New("start spicedb: no datastore URL")
	}
	bin, err := BuildSpiceDB(ctx)
	if err != nil {
		return nil, fmt.Errorf("start spicedb: %w", err)
	}
	dir, err := os.MkdirTemp("", "tenantgate-spicedb-")
	if err != nil {
		return nil, fmt.Errorf("start spicedb: %w", err)
	}
	s := &SpiceDB{logger: logger, bin: bin, dir: dir, datastoreURL: opts.DatastoreURL, token: rand.Text(), extraKeys: opts.ExtraKeys}
	if err := s.create(ctx); err != nil {
		// Cleaning up must work even when ctx is what ran out.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spicedbTimeout)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("start spicedb: %w", err), s.Close(closeCtx))
	}
	return s, nil
}

func (s *SpiceDB) create(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, spicedbTimeout)
	defer cancel()
	began := time.Now()
	if err := s.migrate(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		var err error
		if s.port, err = devenv.FreePort(); err != nil {
			return err
		}
		output, err := s.startLocked(ctx)
		if err == nil {
			break
		}
		if attempt == spicedbStartAttempts || !strings.Contains(output, "address already in use") {
			return err
		}
		s.logger.WarnContext(ctx, "spicedb port taken, trying another", slog.Int("port", s.port))
	}
	s.logger.InfoContext(ctx, "spicedb started",
		slog.String("endpoint", s.Endpoint()), slog.String("dir", s.dir), slog.Duration("took", time.Since(began)))
	return nil
}

// migrate runs SpiceDB's own migrations, which `serve` does not.
func (s *SpiceDB) migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, s.bin, "datastore", "migrate", "head",
		"--datastore-engine=postgres", "--datastore-conn-uri="+s.datastoreURL,
		"--log-level=warn", "--log-format=json", "--skip-release-check")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("spicedb datastore migrate: %w\n%s", err, devenv.Tail(out, logTailBytes))
	}
	return nil
}

// Endpoint is the gRPC address, host:port, without TLS.
func (s *SpiceDB) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Token is the preshared key clients send as bearer token.
func (s *SpiceDB) Token() string { return s.token }

// Output is the tail of the server's log, across restarts.
func (s *SpiceDB) Output() string {
	data, err := os.ReadFile(s.logFile())
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return devenv.Tail(data, logTailBytes)
}

// Start starts a stopped or killed server again, on the same port and
// datastore, and returns once it reports serving.
func (s *SpiceDB) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("start spicedb: already closed")
	case s.proc != nil:
		return errors.New("start spicedb: already running")
	}
	ctx, cancel := context.WithTimeout(ctx, spicedbTimeout)
	defer cancel()
	if _, err := s.startLocked(ctx); err != nil {
		return fmt.Errorf("start spicedb: %w", err)
	}
	s.logger.InfoContext(ctx, "spicedb started again", slog.String("endpoint", s.Endpoint()))
	return nil
}

// Stop shuts the server down gracefully (SIGTERM, then SIGKILL if it takes
// too long). A server that is not running is not an error.
func (s *SpiceDB) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(ctx)
}

// Kill ends the server with SIGKILL, as a crash would, and returns once it
// is gone. A server that is not running is not an error.
func (s *SpiceDB) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.Kill()
	s.proc = nil
	if err != nil {
		return fmt.Errorf("kill spicedb: %w", err)
	}
	s.logger.Info("spicedb killed", slog.String("endpoint", s.Endpoint()))
	return nil
}

// Close stops the server and removes its temp dir; the datastore is left
// alone. Later calls do nothing.
func (s *SpiceDB) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	stopErr := s.stopLocked(ctx)
	removeErr := os.RemoveAll(s.dir)
	s.closed = true
	if err := errors.Join(stopErr, removeErr); err != nil {
		return fmt.Errorf("close spicedb: %w", err)
	}
	return nil
}

func (s *SpiceDB) logFile() string { return filepath.Join(s.dir, "spicedb.log") }

// startLocked starts the server and waits until it serves. On failure it
// leaves no process behind and returns the run's output as well, for the
// caller to look for a port clash in.
func (s *SpiceDB) startLocked(ctx context.Context) (output string, err error) {
	proc, err := StartProcess(ProcessOptions{
		Path: s.bin,
		// SpiceDB takes several keys separated by commas.
		Args:    devenv.SpiceDBServeArgs(s.Endpoint(), strings.Join(append([]string{s.token}, s.extraKeys...), ","), s.datastoreURL),
		LogFile: s.logFile(),
	})
	if err != nil {
		return "", err
	}
	if err := awaitServing(ctx, s.Endpoint(), proc); err != nil {
		if killErr := proc.Kill(); killErr != nil {
			err = errors.Join(err, killErr)
		}
		output := proc.Output()
		return output, fmt.Errorf("%w\nserver log (tail of %s):\n%s", err, s.logFile(), output)
	}
	s.proc = proc
	return "", nil
}

func (s *SpiceDB) stopLocked(ctx context.Context) error {
	if s.proc == nil {
		return nil
	}
	err := s.proc.Stop(ctx)
	s.proc = nil
	if err != nil {
		return fmt.Errorf("stop spicedb: %w", err)
	}
	s.logger.InfoContext(ctx, "spicedb stopped", slog.String("endpoint", s.Endpoint()))
	return nil
}

// awaitServing polls the gRPC health service, which SpiceDB answers without
// a token and reports SERVING for "" once its datastore is ready, until it
// does, the process exits or ctx ends.
func awaitServing(ctx context.Context, endpoint string, proc *Process) error {
	conn, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The default backoff reconnects after a second or more; the server
		// usually comes up well within that.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.5, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: healthCallTimeout,
		}))
	if err != nil {
		return fmt.Errorf("await spicedb: %w", err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, healthCallTimeout)
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("health status %s", resp.GetStatus())
		}
		select {
		case <-proc.Done():
			return fmt.Errorf("spicedb exited before serving: %w", proc.Wait(context.Background()))
		case <-ctx.Done():
			return fmt.Errorf("spicedb on %s not serving: %w (last check: %w)", endpoint, context.Cause(ctx), err)
		case <-tick.C:
		}
	}
}
