package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

const (
	// pgBouncerStartTimeout bounds waiting for a new PgBouncer to accept a
	// connection that reaches PostgreSQL through it.
	pgBouncerStartTimeout = 30 * time.Second
	// pgBouncerStopGrace is how long Stop waits after SIGTERM (immediate
	// shutdown) before SIGKILL.
	pgBouncerStopGrace = 10 * time.Second
	// pgBouncerStartAttempts covers another process taking the free port
	// between our probe and PgBouncer's bind.
	pgBouncerStartAttempts = 3
)

// PgBouncerOptions configure StartPgBouncer.
type PgBouncerOptions struct {
	// PoolMode is PgBouncer's pool_mode: "session" or "transaction".
	PoolMode string
	// Settings are [pgbouncer] lines written after the defaults, which they
	// override: "server_round_robin = 1" makes consecutive transactions
	// of one client land on different server connections, as on a busy
	// pooler.
	Settings []string
}

// PgBouncer is a throwaway PgBouncer in front of one PostgreSQL server,
// with trust authentication on 127.0.0.1: every database of the server
// is reachable through it under the same name and user.
type PgBouncer struct {
	// Port is where it listens, on 127.0.0.1.
	Port    int
	dir     string
	logFile string
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartPgBouncer starts PgBouncer on a free port in front of the server
// backendURL names (any of its databases; the URL's user and password are
// what PgBouncer logs in with) and returns once a connection through it
// reaches that database. It is stopped when tb ends. Without the pgbouncer
// binary tb fails: the tests that need it are the only evidence of how
// tenantgate behaves behind a pooler, so they must not pass unrun.
func StartPgBouncer(tb testing.TB, backendURL string, opts PgBouncerOptions) *PgBouncer {
	tb.Helper()
	bin, err := pgBouncerBinary()
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	backend, err := url.Parse(backendURL)
	if err != nil {
		tb.Fatalf("testutil: start pgbouncer: backend URL: %v", err)
	}
	cred, err := devenv.ServerCredential()
	if err != nil {
		tb.Fatalf("testutil: start pgbouncer: %v", err)
	}
	// Not tb.TempDir: the user PgBouncer runs as could not enter it.
	dir, err := os.MkdirTemp("", "tenantgate-pgbouncer-")
	if err != nil {
		tb.Fatalf("testutil: start pgbouncer: %v", err)
	}
	b := &PgBouncer{dir: dir, logFile: filepath.Join(dir, "pgbouncer.log")}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgBouncerStopGrace+5*time.Second)
		defer cancel()
		if err := b.stop(ctx); err != nil {
			tb.Errorf("testutil: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("testutil: remove pgbouncer dir: %v", err)
		}
	})
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("testutil: start pgbouncer: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(tb.Context(), pgBouncerStartTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		if b.Port, err = devenv.FreePort(); err != nil {
			tb.Fatalf("testutil: start pgbouncer: %v", err)
		}
		err = b.start(ctx, bin, cred, backend, opts)
		if err == nil {
			return b
		}
		if attempt == pgBouncerStartAttempts || !strings.Contains(b.logTail(), "Address already in use") {
			tb.Fatalf("testutil: start pgbouncer: %v\npgbouncer log (tail of %s):\n%s", err, b.logFile, b.logTail())
		}
		if err := b.stop(ctx); err != nil {
			tb.Fatalf("testutil: %v", err)
		}
	}
}

// pgBouncerBinary finds pgbouncer on PATH or where Debian installs it,
// /usr/sbin, which a non-root PATH often lacks.
func pgBouncerBinary() (string, error) {
	if bin, err := exec.LookPath("pgbouncer"); err == nil {
		return bin, nil
	}
	const debian = "/usr/sbin/pgbouncer"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("pgbouncer not found on PATH or in /usr/sbin: install it (apt-get install pgbouncer; .ci/run does) to run the tests of tenantgate behind a pooler")
}

// URL is dbURL with its host and port replaced by PgBouncer's: the same
// database and user, through the pooler.
func (b *PgBouncer) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		// The URLs come from the tests' own helpers.
		panic(fmt.Sprintf("testutil: pgbouncer URL of %q: %v", dbURL, err))
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	return u.String()
}

func (b *PgBouncer) start(ctx context.Context, bin string, cred *syscall.Credential, backend *url.URL, opts PgBouncerOptions) error {
	user := backend.User.Username()
	password, _ := backend.User.Password()
	server := "host=" + backend.Hostname() + " port=" + backend.Port()
	if password != "" {
		server += " password=" + connValue(password)
	}
	conf := []string{
		"[databases]",
		// The fallback entry: any database, under its own name.
		"* = " + server,
		"[pgbouncer]",
		"listen_addr = 127.0.0.1",
		"listen_port = " + strconv.Itoa(b.Port),
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = " + filepath.Join(b.dir, "userlist.txt"),
		"pool_mode = " + opts.PoolMode,
		// PgBouncer refuses a login with startup parameters it does not
		// know; pgx sends neither of these, other clients may.
		"ignore_startup_parameters = extra_float_digits,options",
	}
	conf = append(conf, opts.Settings...)
	if err := os.WriteFile(filepath.Join(b.dir, "pgbouncer.ini"), []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	// In trust mode the user must still be listed; the password is unused.
	if err := os.WriteFile(filepath.Join(b.dir, "userlist.txt"), []byte(quoteUserlist(user)+` ""`+"\n"), 0o644); err != nil {
		return err
	}
	log, err := os.OpenFile(b.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = log, log
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(b.done)
	}()
	return b.await(ctx, b.URL(backend.String()))
}

// await polls until a connection through PgBouncer reaches PostgreSQL,
// which also proves the [databases] entry and the auth file right.
func (b *PgBouncer) await(ctx context.Context, dbURL string) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = connectTimeout
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.WithoutCancel(ctx))
			if err == nil {
				return nil
			}
		}
		select {
		case <-b.done:
			return fmt.Errorf("pgbouncer exited: %s", b.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("pgbouncer on port %d passes no connection: %w", b.Port, err)
		case <-tick.C:
		}
	}
}

// stop ends PgBouncer; one that is not running is not an error.
func (b *PgBouncer) stop(ctx context.Context) error {
	if b.cmd == nil {
		return nil
	}
	defer func() { b.cmd = nil }()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop pgbouncer: %w", err)
	}
	grace := time.NewTimer(pgBouncerStopGrace)
	defer grace.Stop()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
	case <-grace.C:
	}
	_ = b.cmd.Process.Kill()
	<-b.done
	return fmt.Errorf("stop pgbouncer: still running after SIGTERM, killed\npgbouncer log (tail of %s):\n%s", b.logFile, b.logTail())
}

func (b *PgBouncer) logTail() string {
	data, err := os.ReadFile(b.logFile)
	if err != nil {
		return fmt.Sprintf("(no pgbouncer log: %v)", err)
	}
	return devenv.Tail(data, 2048)
}

// connValue quotes s as a libpq connection string value.
func connValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// quoteUserlist quotes s for PgBouncer's auth file, which doubles quotes.
func quoteUserlist(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
