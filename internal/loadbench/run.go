package loadbench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/store"
)

const (
	// benchIssuer is the iss and aud of the bench's tokens.
	benchIssuer = "tenantgate-bench"
	// tokenTTL outlasts any run.
	tokenTTL = 24 * time.Hour
	// cleanupTimeout bounds stopping everything, also after ctx ended.
	cleanupTimeout = 2 * time.Minute
	// indexLoadTimeout bounds the wait for a gateway's index to hold every
	// relationship; past it the gateway is measured as it is.
	indexLoadTimeout = 2 * time.Minute
)

// run is one `tenantgate bench`: what it started and what it measured.
type run struct {
	cfg    Config
	log    *slog.Logger
	began  time.Time
	load   string // load average at the start
	logDir string

	pg     *devenv.Postgres
	appURL string
	db     *pgxpool.Pool

	data  *Dataset
	rels  int
	truth *Truth
	work  *workload

	jwksFile     string
	tokens       map[string]string
	serviceToken string

	remote  *remoteBackend // while spicedb or remote is measured
	results []result
}

// Run measures every system of cfg on a generated data set, prints the
// table to out and writes the chart. Progress goes to logger.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, out io.Writer) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r := &run{cfg: cfg, log: logger, began: time.Now(), load: LoadAverage()}
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		err = errors.Join(err, r.close(cleanupCtx))
	}()
	if err := r.prepare(ctx); err != nil {
		return err
	}
	for i, system := range cfg.Systems {
		err := r.measure(ctx, system)
		if r.remote != nil && !NeedsSpiceDB(cfg.Systems[i+1:]) {
			err = errors.Join(err, r.stopRemote(ctx))
		}
		if err != nil {
			return err
		}
	}
	for _, n := range cfg.IndexSizes {
		if err := r.measureIndex(ctx, n); err != nil {
			return err
		}
	}
	return r.report(out)
}

// step logs that something starts and returns a func that logs how long
// it took.
func (r *run) step(ctx context.Context, what string, attrs ...any) func() {
	r.log.InfoContext(ctx, "bench: "+what, attrs...)
	began := time.Now()
	return func() {
		r.log.InfoContext(ctx, "bench: "+what+": done", append(attrs, "took", time.Since(began).Round(time.Millisecond))...)
	}
}

// prepare sets the run up and draws the bench's workload, with a token
// for every user it asks about.
func (r *run) prepare(ctx context.Context) error {
	if err := r.setUp(ctx); err != nil {
		return err
	}
	var err error
	if r.work, err = newWorkload(r.cfg, r.data, r.truth); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return r.mintTokens(ctx, r.work.users())
}

// setUp starts a throwaway PostgreSQL and loads the generated data set
// into it.
func (r *run) setUp(ctx context.Context) error {
	if err := r.makeLogDir(); err != nil {
		return err
	}
	r.log.InfoContext(ctx, "bench: process logs are kept", "dir", r.logDir)
	done := r.step(ctx, "starting a throwaway PostgreSQL")
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{Logger: r.log})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.pg = pg
	r.appURL = pg.URL("app")
	if err := pg.CreateDatabase(ctx, "app", ""); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := store.Migrate(ctx, r.appURL, r.log); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.db, err = openPool(ctx, r.appURL, r.cfg.Clients+2, false); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	done()
	return r.loadData(ctx)
}

func (r *run) makeLogDir() error {
	r.logDir = r.cfg.LogDir
	var err error
	if r.logDir == "" {
		r.logDir, err = os.MkdirTemp("", "tenantgate-bench-")
	} else {
		err = os.MkdirAll(r.logDir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("bench: log dir: %w", err)
	}
	return nil
}

func (r *run) loadData(ctx context.Context) error {
	s := r.cfg.Sizes
	done := r.step(ctx, "generating and loading the data set", "companies", s.Companies, "users", s.Users, "memberships", s.Memberships)
	d, err := Generate(s)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := loadRows(ctx, r.db, d); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.data, r.rels = d, len(d.Relationships())
	r.truth = NewTruth(d.Companies, d.Memberships)
	done()
	return nil
}

// mintTokens signs one token per user, with a development issuer whose
// key set goes to a file for every process.
func (r *run) mintTokens(ctx context.Context, users []string) error {
	issuer, err := devenv.GenerateIssuer(benchIssuer, benchIssuer)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.jwksFile = filepath.Join(r.logDir, "jwks.json")
	if err := issuer.WriteJWKSFile(r.jwksFile); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	done := r.step(ctx, "minting tokens", "users", len(users))
	r.tokens = make(map[string]string, len(users))
	for _, u := range users {
		if r.tokens[u], err = issuer.Mint(u, tokenTTL, nil); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	r.serviceToken = rand.Text()
	done()
	return nil
}

// close stops whatever still runs; the log dir stays.
func (r *run) close(ctx context.Context) error {
	errs := []error{r.stopRemote(ctx)}
	if r.db != nil {
		r.db.Close()
	}
	if r.pg != nil {
		errs = append(errs, r.pg.Stop(ctx))
	}
	return errors.Join(errs...)
}

func (r *run) measure(ctx context.Context, system System) error {
	switch system {
	case SystemFloor:
		return r.measureFloor(ctx)
	case SystemSQL:
		return r.measureSQL(ctx)
	case SystemSpiceDB:
		return r.measureSpiceDB(ctx)
	}
	for _, index := range []bool{false, true} {
		v, err := r.variant(ctx, system, index)
		if err == nil {
			err = r.measureGateway(ctx, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loopback is a free address on 127.0.0.1 and its http:// base URL.
func loopback() (addr, base string, err error) {
	port, err := devenv.FreePort()
	if err != nil {
		return "", "", err
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return addr, "http://" + addr, nil
}
