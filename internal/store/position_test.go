package store_test

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestWALPositionNamesTheTimeline: the position is the insert position of
// the moment, and its timeline the first 8 hex digits of the name of the
// WAL file being written, read here apart from the SQL that turns them
// into a number.
func TestWALPositionNamesTheTimeline(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	s := openStore(t, dbURL)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var before authz.LSN
	if err := conn.QueryRow(t.Context(), `select pg_current_wal_insert_lsn()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	pos, err := s.WALPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var file string
	var after authz.LSN
	if err := conn.QueryRow(t.Context(), `select pg_walfile_name(lsn), lsn from (select pg_current_wal_insert_lsn() as lsn) as current`).Scan(&file, &after); err != nil {
		t.Fatal(err)
	}
	timeline, err := strconv.ParseUint(file[:8], 16, 32)
	if err != nil {
		t.Fatalf("WAL file %q: %v", file, err)
	}
	if pos.Timeline != uint32(timeline) || pos.Timeline == 0 || pos.LSN < before || pos.LSN > after {
		t.Errorf("WALPosition = %s, want timeline %d and an LSN from %s to %s", pos, timeline, before, after)
	}
}
