package loadbench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/spicedb"
)

// spiceDBServer is `spicedb serve` on a Postgres datastore, plaintext gRPC
// on loopback, with tenantgate's schema written.
type spiceDBServer struct {
	proc     *child
	endpoint string
	token    string
	client   *spicedb.Client
}

// startSpiceDB starts a server called name on a migrated datastore and
// returns once it answers.
func startSpiceDB(ctx context.Context, name, bin, datastoreURL, logDir string) (*spiceDBServer, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return nil, fmt.Errorf("spicedb: %w", err)
	}
	s := &spiceDBServer{endpoint: "127.0.0.1:" + strconv.Itoa(port), token: rand.Text()}
	s.proc, err = startChild(name, logDir, bin, devenv.SpiceDBServeArgs(s.endpoint, s.token, datastoreURL)...)
	if err != nil {
		return nil, fmt.Errorf("spicedb: %w", err)
	}
	s.client, err = spicedb.Dial(spicedb.RemoteConfig{Endpoint: s.endpoint, Token: s.token, Insecure: true})
	if err == nil {
		err = s.awaitServing(ctx)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("spicedb: %w", err), s.stop(context.WithoutCancel(ctx)))
	}
	return s, nil
}

// migrateSpiceDB runs SpiceDB's migrations, which `serve` does not.
func migrateSpiceDB(ctx context.Context, bin, datastoreURL string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "datastore", "migrate", "head",
		"--datastore-engine=postgres", "--datastore-conn-uri="+datastoreURL,
		"--log-level=warn", "--log-format=json", "--skip-release-check").CombinedOutput()
	if err != nil {
		return fmt.Errorf("spicedb datastore migrate: %w\n%s", err, devenv.Tail(out, logTailBytes))
	}
	return nil
}

// migrateTenantgate runs `tenantgate migrate` with args, which writes the
// SpiceDB schema that serve and sync only wait for, as in production.
func migrateTenantgate(ctx context.Context, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"migrate", "--log-format=json"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tenantgate migrate: %w\n%s", err, devenv.Tail(out, logTailBytes))
	}
	return nil
}

// awaitServing reads the schema until SpiceDB answers: the first call it
// can answer. Writing it is `tenantgate migrate`'s (migrateTenantgate).
func (s *spiceDBServer) awaitServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, cancelCall := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.client.ReadSchema(callCtx)
		cancelCall()
		if err == nil {
			return nil
		}
		if exitErr := s.proc.exited(); exitErr != nil {
			return exitErr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving: %w (last: %w)\nlog (tail of %s):\n%s", context.Cause(ctx), err, s.proc.logFile, s.proc.tail())
		case <-tick.C:
		}
	}
}

func (s *spiceDBServer) stop(ctx context.Context) error {
	var errs []error
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	return errors.Join(append(errs, s.proc.stop(ctx))...)
}

// spiceDBSystem asks SpiceDB directly, as an application that embedded
// its client would, at least as fresh as cons.
type spiceDBSystem struct {
	client *spicedb.Client
	cons   authz.Consistency
}

func request(c Check) authz.CheckRequest {
	return authz.CheckRequest{User: c.User, Permission: c.Permission, Company: c.Company}
}

func (s spiceDBSystem) check(ctx context.Context, c Check) (bool, error) {
	allowed, _, err := s.client.Check(ctx, request(c), s.cons)
	return allowed, err
}

func (s spiceDBSystem) checkBulk(ctx context.Context, checks []Check) ([]bool, error) {
	reqs := make([]authz.CheckRequest, len(checks))
	for i, c := range checks {
		reqs[i] = request(c)
	}
	allowed, _, err := s.client.CheckBulk(ctx, reqs, s.cons)
	return allowed, err
}

func (s spiceDBSystem) list(ctx context.Context, user string, p authz.Permission) ([]string, error) {
	var ids []string
	for cursor := ""; ; {
		page, next, err := s.client.LookupCompanies(ctx, user, p, s.cons, maxPageSize, cursor)
		if err != nil {
			return nil, err
		}
		ids = append(ids, page...)
		if next == "" {
			return ids, nil
		}
		cursor = next
	}
}
