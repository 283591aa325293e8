package mirror_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestAppliedReader reads the applied position from the sync's bookkeeping,
// written here by hand in the order the sync writes it.
func TestAppliedReader(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Slot names are per cluster, and tests share the cluster.
	slot := "applied_" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testutil.DropReplicationSlots(ctx, dbURL); err != nil {
			t.Error(err)
		}
	})
	db, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	r := mirror.NewAppliedReader(pool, slot)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(t.Context(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	lsn := func(sql string, args ...any) authz.LSN {
		t.Helper()
		var v authz.LSN
		if err := db.QueryRow(t.Context(), sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	type want struct {
		covered bool
		token   string
	}
	pos := func(at string) authz.LSN {
		t.Helper()
		l, err := authz.ParseLSN(at)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	check := func(step string, at authz.LSN, w want) {
		t.Helper()
		a, err := r.Applied(t.Context())
		if err != nil {
			t.Fatalf("%s: Applied: %v", step, err)
		}
		if covered := a.Covers(at); covered != w.covered || a.Token != w.token {
			t.Errorf("%s: covers %s = %v, token %q; want %v, %q", step, at, covered, a.Token, w.covered, w.token)
		}
	}

	check("no slot, no sync", 0, want{})

	created := lsn(`SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	check("slot whose snapshot is being taken", created, want{})

	// The snapshot is in, with the checkpoint the sync records for it.
	exec(`INSERT INTO tenantgate.sync_state (slot, snapshot_done) VALUES ($1, true)`, slot)
	check("snapshot done but no checkpoint to read at", created, want{})
	exec(`INSERT INTO tenantgate.sync_checkpoints (slot, lsn, zed_token) VALUES ($1, $2, 'zed-1')`, slot, created.String())
	check("snapshot's position", created, want{true, "zed-1"})
	check("position before it", pos("0/1"), want{true, "zed-1"})

	// A membership commit the sync has not confirmed yet.
	exec(`INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`)
	after := lsn(`SELECT pg_current_wal_insert_lsn()`)
	check("commit not yet confirmed", after, want{false, "zed-1"})

	// The sync writes the commit, records it, then confirms past it:
	// pg_replication_slot_advance does what its status update does. It
	// stops at the flushed WAL, which an asynchronous commit may still
	// trail, so it is repeated until it got there.
	// A position past the snapshot's and short of after, so that only the
	// slot can cover after. (The flushed position was used here once, and
	// with asynchronous commits it could still equal the snapshot's.)
	commit := lsn(`SELECT $1::pg_lsn + 1`, created.String())
	exec(`INSERT INTO tenantgate.sync_checkpoints (slot, lsn, zed_token) VALUES ($1, $2, 'zed-2')`, slot, commit.String())
	testutil.Eventually(t, 10*time.Second, func() error {
		exec(`SELECT pg_replication_slot_advance($1, pg_current_wal_insert_lsn())`, slot)
		if a, err := r.Applied(t.Context()); err != nil || !a.Covers(after) {
			return fmt.Errorf("waiting for the slot to pass %s (%v)", after, err)
		}
		return nil
	})
	check("confirmed by the slot", after, want{true, "zed-2"})
	confirmed := lsn(`SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1`, slot)
	check("the slot's own position", confirmed, want{true, "zed-2"})

	// Checkpoints alone cover too, and an insert position just past a
	// page or segment header stands for the boundary.
	exec(`INSERT INTO tenantgate.sync_checkpoints (slot, lsn, zed_token) VALUES ($1, '7/2000', 'zed-3'), ($1, '8/1000000', 'zed-4')`, slot)
	for _, tt := range []struct {
		at string
		w  want
	}{
		{"7/2000", want{true, "zed-4"}},
		{"7/2018", want{true, "zed-4"}},    // past a page header
		{"8/1000028", want{true, "zed-4"}}, // past a segment header
		{"8/1000030", want{false, "zed-4"}},
		{"FFFFFFFF/FFFFFFFF", want{false, "zed-4"}},
	} {
		check("checkpoint", pos(tt.at), tt.w)
	}

	if a, err := mirror.NewAppliedReader(pool, "no_such_slot").Applied(t.Context()); a.Covers(1) || a.Token != "" || err != nil {
		t.Errorf("unknown slot: Applied = covers %v, %q, %v", a.Covers(1), a.Token, err)
	}
	// Malformed positions never get here: authz.ParseLSN refuses them
	// (TestParseLSN).
}
