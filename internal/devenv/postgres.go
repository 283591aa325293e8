package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresURLEnv names an existing server for the tests to use instead of
// starting a cluster (internal/testutil reads it): a postgres:// URL of a
// role that may create databases. StartPostgres's error suggests it.
const PostgresURLEnv = "TENANTGATE_TEST_DATABASE_URL"

const (
	// postgresTimeout bounds each pg_ctl start or stop and the readiness
	// poll when the caller's context has no earlier deadline.
	postgresTimeout = 60 * time.Second
	// postgresStartAttempts covers another process taking the free port
	// between our probe and the server's bind.
	postgresStartAttempts = 3
	// logTailBytes is how much of the server log an error carries.
	logTailBytes = 2048
	// connectTimeout bounds one connection attempt, so that a server that
	// accepts TCP but never answers cannot use up a whole wait.
	connectTimeout = 5 * time.Second
)

// postgresSettings tune a throwaway cluster: durability is worthless for
// data that lives one test run or one demo, logical replication is what the
// sync uses, commit timestamps are what SpiceDB's Postgres datastore needs
// for the Watch that feeds the permission index, and parallel tests each
// hold a few pooled connections.
var postgresSettings = []string{
	"listen_addresses = '127.0.0.1'",
	"wal_level = logical",
	"track_commit_timestamp = on",
	"max_replication_slots = 20",
	"max_wal_senders = 20",
	"fsync = off",
	"synchronous_commit = off",
	"full_page_writes = off",
	"max_connections = 200",
}

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	// Logger receives the cluster's lifecycle; nil discards.
	Logger *slog.Logger
	// Settings are postgresql.conf lines written after the defaults, which
	// they override (a later line wins): "wal_level = replica" makes a
	// server the sync cannot use, for tests of what it says.
	Settings []string
	// Password, when not empty, is the superuser's password, and every
	// TCP connection, replication connections included, must log in with
	// a password (scram-sha-256) instead of being trusted: for tests of
	// wrong and rotated passwords. URL carries it. The Unix socket stays
	// trusted.
	Password string
}

// Postgres is a throwaway PostgreSQL cluster in a temp dir of its own, with
// trust authentication for the superuser "postgres" on 127.0.0.1, or
// password authentication with PostgresOptions.Password.
type Postgres struct {
	logger   *slog.Logger
	settings []string
	password string
	dir      string
	port     int
	// cred runs the server binaries as the "postgres" user when we are root,
	// because initdb and postgres refuse to run as root.
	cred *syscall.Credential

	mu      sync.Mutex
	removed bool
}

// StartPostgres creates a cluster in a new temp dir with initdb, starts it on
// a free port with pg_ctl and returns once it accepts connections. Stop it
// with Stop, which also removes the dir.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, bin := range []string{"initdb", "pg_ctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("start postgres: %s not found on PATH: install PostgreSQL server binaries (apt-get install postgresql; Debian puts them in /usr/lib/postgresql/<version>/bin) or set %s", bin, PostgresURLEnv)
		}
	}
	cred, err := ServerCredential()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	dir, err := os.MkdirTemp("", "tenantgate-pg-")
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	p := &Postgres{logger: logger, dir: dir, cred: cred, settings: opts.Settings, password: opts.Password}
	if err := p.create(ctx); err != nil {
		// Cleaning up must work even when ctx is what ran out.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), postgresTimeout)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("start postgres: %w", err), p.Stop(stopCtx))
	}
	return p, nil
}

func (p *Postgres) create(ctx context.Context) error {
	began := time.Now()
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return err
		}
	}
	auth, err := p.initdbAuth()
	if err != nil {
		return err
	}
	if err := p.run(ctx, "initdb", append([]string{"-D", p.dataDir(), "-U", "postgres",
		"--no-sync", "--encoding=UTF8", "--locale=C"}, auth...)...); err != nil {
		return err
	}
	settings := slices.Concat(postgresSettings, []string{"unix_socket_directories = " + confString(p.dir)}, p.settings)
	conf, err := os.OpenFile(filepath.Join(p.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = io.WriteString(conf, "\n# tenantgate test settings\n"+strings.Join(settings, "\n")+"\n")
	if err := errors.Join(err, conf.Close()); err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	for attempt := 1; ; attempt++ {
		if p.port, err = FreePort(); err != nil {
			return err
		}
		err = p.startServer(ctx)
		if err == nil || attempt == postgresStartAttempts || !strings.Contains(p.logTail(), "Address already in use") {
			break
		}
		p.logger.WarnContext(ctx, "postgres port taken, trying another", slog.Int("port", p.port))
	}
	if err != nil {
		return err
	}
	p.logger.InfoContext(ctx, "postgres started",
		slog.Int("port", p.port), slog.String("dir", p.dir), slog.Duration("took", time.Since(began)))
	return nil
}

// initdbAuth are initdb's authentication flags. With a password, its
// pg_hba.conf asks one of every TCP login, replication included; initdb
// reads the password from a file so that it shows in no process list.
func (p *Postgres) initdbAuth() ([]string, error) {
	if p.password == "" {
		return []string{"-A", "trust"}, nil
	}
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if p.cred != nil {
		if err := os.Chown(pwfile, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, err
		}
	}
	return []string{"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile}, nil
}

// URL is the address of database dbname in the cluster, as the superuser.
func (p *Postgres) URL(dbname string) string {
	user := url.User("postgres")
	if p.password != "" {
		user = url.UserPassword("postgres", p.password)
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, p.port, url.PathEscape(dbname))
}

// Stop shuts the server down (fast: open sessions are ended) and removes the
// temp dir. Later calls do nothing.
func (p *Postgres) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return nil
	}
	stopErr := p.stopServer(ctx)
	removeErr := os.RemoveAll(p.dir)
	p.removed = true
	if err := errors.Join(stopErr, removeErr); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	p.logger.InfoContext(ctx, "postgres stopped", slog.Int("port", p.port))
	return nil
}

// Restart stops the server (ending open sessions) and starts it again on the
// same port with the same data, so URLs stay valid across it.
func (p *Postgres) Restart(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return errors.New("restart postgres: already stopped")
	}
	if err := p.stopServer(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	if err := p.startServer(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	p.logger.InfoContext(ctx, "postgres restarted", slog.Int("port", p.port))
	return nil
}

// Halt stops the server (ending open sessions) and keeps its data, for an
// outage that lasts until Start; URLs stay valid across both.
func (p *Postgres) Halt(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return errors.New("halt postgres: already stopped")
	}
	if err := p.stopServer(ctx); err != nil {
		return fmt.Errorf("halt postgres: %w", err)
	}
	p.logger.InfoContext(ctx, "postgres halted", slog.Int("port", p.port))
	return nil
}

// Start starts a halted server again, on the same port with the same data.
func (p *Postgres) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return errors.New("start postgres: already stopped")
	}
	if err := p.startServer(ctx); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	p.logger.InfoContext(ctx, "postgres started again", slog.Int("port", p.port))
	return nil
}

// NewTimeline moves the server to a new timeline, as a failover to a
// standby or a restore from a backup does, for tests of what follows one:
// it stops the server, starts it again as a standby replaying its own WAL
// and promotes it. Open sessions are ended and temporary replication slots
// dropped; URLs stay valid across it.
func (p *Postgres) NewTimeline(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return errors.New("new timeline: already stopped")
	}
	if err := p.stopServer(ctx); err != nil {
		return fmt.Errorf("new timeline: %w", err)
	}
	signal := filepath.Join(p.dataDir(), "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return fmt.Errorf("new timeline: %w", err)
	}
	if p.cred != nil {
		if err := os.Chown(signal, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("new timeline: %w", err)
		}
	}
	if err := p.startServer(ctx); err != nil {
		return fmt.Errorf("new timeline: %w", err)
	}
	promoteCtx, cancel := context.WithTimeout(ctx, postgresTimeout)
	defer cancel()
	// -w returns once the server is out of recovery and takes writes.
	if err := p.run(promoteCtx, "pg_ctl", "promote", "-D", p.dataDir(), "-w", "-t", waitSeconds(promoteCtx)); err != nil {
		return fmt.Errorf("new timeline: %w\nserver log (tail of %s):\n%s", err, p.logFile(), p.logTail())
	}
	p.logger.InfoContext(ctx, "postgres promoted to a new timeline", slog.Int("port", p.port))
	return nil
}

// CreateDatabase creates database name as a copy of template; an empty
// template means PostgreSQL's default, template1.
func (p *Postgres) CreateDatabase(ctx context.Context, name, template string) error {
	cfg, err := connectConfig(p.URL("postgres"))
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	return CreateDatabase(ctx, conn, name, template)
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *Postgres) logFile() string { return filepath.Join(p.dir, "postgres.log") }

// startServer runs pg_ctl start, which waits for the server to report ready,
// then polls until a connection succeeds, since that is what callers need.
func (p *Postgres) startServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, postgresTimeout)
	defer cancel()
	err := p.run(ctx, "pg_ctl", "start", "-D", p.dataDir(), "-l", p.logFile(),
		"-w", "-t", waitSeconds(ctx), "-o", "-p "+strconv.Itoa(p.port))
	if err == nil {
		err = p.awaitConnection(ctx)
	}
	if err != nil {
		return fmt.Errorf("start server: %w\nserver log (tail of %s):\n%s", err, p.logFile(), p.logTail())
	}
	return nil
}

// stopServer is a no-op when no server runs, e.g. after a failed start.
func (p *Postgres) stopServer(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(p.dataDir(), "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, postgresTimeout)
	defer cancel()
	if err := p.run(ctx, "pg_ctl", "stop", "-D", p.dataDir(), "-m", "fast", "-w", "-t", waitSeconds(ctx)); err != nil {
		return fmt.Errorf("stop server: %w\nserver log (tail of %s):\n%s", err, p.logFile(), p.logTail())
	}
	return nil
}

func (p *Postgres) awaitConnection(ctx context.Context) error {
	cfg, err := connectConfig(p.URL("postgres"))
	if err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres on port %d accepts no connections: %w", p.port, err)
		case <-tick.C:
		}
	}
}

// run runs a server binary as the server's user, from the cluster dir
// because that user may not be allowed into our working directory.
func (p *Postgres) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = p.dir
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves a server behind; should it ever hold on to our
	// output pipe, Wait must not hang on it.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, Tail(out.Bytes(), logTailBytes))
	}
	return nil
}

func (p *Postgres) logTail() string {
	data, err := os.ReadFile(p.logFile())
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return Tail(data, logTailBytes)
}

// ServerCredential is nil unless we are root; otherwise it is the user
// "postgres", which server binaries that refuse to run as root (initdb,
// postgres, pgbouncer) are run as.
func ServerCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which initdb refuses, and no user to run it as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// FreePort is a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitSeconds is pg_ctl's -t for the time left before ctx's deadline.
func waitSeconds(ctx context.Context) string {
	left := postgresTimeout
	if deadline, ok := ctx.Deadline(); ok {
		left = time.Until(deadline)
	}
	return strconv.Itoa(max(1, int(left.Seconds())))
}

// confString quotes s as a postgresql.conf string.
func confString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Tail is the last n bytes of data, as text: what an error quotes of a
// process's output.
func Tail(data []byte, n int) string {
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// Execer is what CreateDatabase needs of a connection or a pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// CreateDatabase runs CREATE DATABASE name (from template, unless it is
// empty), which must not run in a transaction; pgx sends an Exec without
// arguments as a simple query, outside any.
func CreateDatabase(ctx context.Context, db Execer, name, template string) error {
	stmt := "create database " + QuoteIdent(name)
	if template != "" {
		stmt += " template " + QuoteIdent(template)
	}
	if _, err := db.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// QuoteIdent quotes name as an SQL identifier.
func QuoteIdent(name string) string {
	return pgx.Identifier{name}.Sanitize()
}

// connectConfig parses dbURL and bounds connecting when the URL does not.
func connectConfig(dbURL string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	return cfg, nil
}
