package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// awaitBound is how long a write made straight to Postgres may take to be
// applied; the gateway's default wait is 5 s.
const awaitBound = 3 * time.Second

// writer is one connection, so that the position read after a commit is read
// where the commit happened, as the documented recipe says.
type writer struct {
	t    *testing.T
	conn *pgxpool.Conn
}

func (e *env) writer() *writer {
	e.t.Helper()
	conn, err := e.db.Acquire(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(conn.Release)
	return &writer{t: e.t, conn: conn}
}

func (w *writer) exec(sql string) {
	w.t.Helper()
	if _, err := w.conn.Exec(context.Background(), sql); err != nil {
		w.t.Fatalf("exec %q: %v", sql, err)
	}
}

// lsn reads a WAL position with fn (pg_current_wal_insert_lsn or
// pg_current_wal_lsn).
func (w *writer) lsn(fn string) authz.LSN {
	w.t.Helper()
	var lsn authz.LSN
	if err := w.conn.QueryRow(context.Background(), "SELECT "+fn+"()").Scan(&lsn); err != nil {
		w.t.Fatal(err)
	}
	return lsn
}

func TestAwaitAppliedReflectsADirectWrite(t *testing.T) {
	for _, mode := range []struct {
		name       string
		persistent bool
	}{{"persistent slot", true}, {"temporary slot", false}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnv(t)
			e.exec(`CREATE TABLE unrelated (n int)`) // outside the publication
			e.exec(`INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`)
			cfg := e.config()
			cfg.Persistent = mode.persistent
			// The default interval: a waiter must not depend on it.
			cfg.StatusInterval = 0
			r := e.start(cfg, e.target)
			e.waitReady(r)
			w := e.writer()

			member := authz.CheckRequest{User: "ann", Permission: authz.PermRead, Company: "acme"}
			tests := []struct {
				name string
				// write changes memberships, maybe writes other WAL after
				// the commit, and returns the position read after it.
				write func() authz.LSN
				want  bool
			}{
				{"grant, insert position", func() authz.LSN {
					w.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('ann', 'acme', 'viewer')`)
					return w.lsn("pg_current_wal_insert_lsn")
				}, true},
				{"revoke, then a write to another table", func() authz.LSN {
					w.exec(`DELETE FROM company_memberships WHERE user_id = 'ann'`)
					w.exec(`INSERT INTO unrelated VALUES (1)`)
					return w.lsn("pg_current_wal_insert_lsn")
				}, false},
				{"grant, then logical messages", func() authz.LSN {
					w.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('ann', 'acme', 'editor')`)
					w.exec(`SELECT pg_logical_emit_message(true, 'other-app', 'x')`)
					w.exec(`SELECT pg_logical_emit_message(false, 'other-app', 'y')`)
					return w.lsn("pg_current_wal_insert_lsn")
				}, true},
				{"revoke, synchronous commit, write position", func() authz.LSN {
					// pg_current_wal_lsn() covers a commit only when the
					// commit was flushed; the test cluster commits
					// asynchronously unless told otherwise.
					w.exec(`SET synchronous_commit = on`)
					defer w.exec(`RESET synchronous_commit`)
					w.exec(`UPDATE company_memberships SET status = 'inactive' WHERE user_id = 'ann'`)
					return w.lsn("pg_current_wal_lsn")
				}, false},
				{"no membership change at all", func() authz.LSN {
					w.exec(`INSERT INTO unrelated VALUES (2)`)
					return w.lsn("pg_current_wal_insert_lsn")
				}, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					lsn := tt.write()
					ctx, cancel := context.WithTimeout(context.Background(), awaitBound)
					defer cancel()
					started := time.Now()
					token, err := r.syncer.AwaitApplied(ctx, lsn)
					if err != nil {
						t.Fatalf("AwaitApplied(%s): %v", lsn, err)
					}
					t.Logf("lsn %s applied after %v", lsn, time.Since(started).Round(time.Millisecond))
					if token == "" {
						t.Fatal("no token")
					}
					allowed, _, err := e.target.Check(ctx, member, authz.Consistency{AtLeastAsFresh: token})
					if err != nil {
						t.Fatal(err)
					}
					if allowed != tt.want {
						t.Errorf("read at the token: allowed = %v, want %v", allowed, tt.want)
					}
				})
			}
		})
	}
}

// TestSlotConfirmsPromptly is what a gateway in another process relies on:
// the slot's confirmed position passes a position read after a commit that
// other WAL follows within a round trip, not at the next status interval.
func TestSlotConfirmsPromptly(t *testing.T) {
	e := newEnv(t)
	e.exec(`CREATE TABLE unrelated (n int)`)
	e.exec(`INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`)
	cfg := e.config()
	cfg.StatusInterval = time.Hour
	r := e.start(cfg, e.target)
	e.waitReady(r)
	w := e.writer()
	w.exec(`SET synchronous_commit = on`)
	for i := range 5 {
		w.exec(fmt.Sprintf(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('u%d', 'acme', 'viewer')`, i))
		w.exec(`INSERT INTO unrelated VALUES (1)`)
		lsn := w.lsn("pg_current_wal_lsn")
		started := time.Now()
		testutil.Eventually(t, awaitBound, func() error {
			var confirmed bool
			err := e.db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`,
				lsn.String(), cfg.Slot).Scan(&confirmed)
			if err == nil && !confirmed {
				err = fmt.Errorf("slot not confirmed through %s", lsn)
			}
			return err
		})
		t.Logf("slot confirmed %s after %v", lsn, time.Since(started).Round(time.Millisecond))
	}
}

func TestAwaitAppliedTimesOutUnavailable(t *testing.T) {
	e := newEnv(t)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	future := e.writer().lsn("pg_current_wal_insert_lsn") + 1<<40
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	started := time.Now()
	token, err := r.syncer.AwaitApplied(ctx, future)
	if !errors.Is(err, authz.ErrUnavailable) || token != "" {
		t.Fatalf("AwaitApplied(%s) = %q, %v; want an unavailable error", future, token, err)
	}
	if waited := time.Since(started); waited < 300*time.Millisecond {
		t.Errorf("gave up after %v, before its context ended", waited)
	}
}

func TestAwaitAppliedWakesEveryWaiter(t *testing.T) {
	e := newEnv(t)
	e.exec(`INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`)
	r := e.start(e.config(), e.target)
	e.waitReady(r)
	w := e.writer()
	w.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('ann', 'acme', 'viewer')`)
	lsn := w.lsn("pg_current_wal_insert_lsn")
	ctx, cancel := context.WithTimeout(context.Background(), awaitBound)
	defer cancel()
	errs := make(chan error, 20)
	for range cap(errs) {
		go func() {
			_, err := r.syncer.AwaitApplied(ctx, lsn)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
