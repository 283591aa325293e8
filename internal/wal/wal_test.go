package wal_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/wal"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

func TestRecordEnd(t *testing.T) {
	g := wal.Geometry{Page: 8192, Segment: 16 << 20}
	tests := []struct {
		name string
		geo  wal.Geometry
		in   string
		want string
	}{
		{"inside a page", g, "0/16B3748", "0/16B3748"},
		{"past a page header", g, "0/16B2018", "0/16B2000"},
		{"past a segment's long header", g, "1/1000028", "1/1000000"},
		{"24 bytes into a segment is inside its header", g, "0/1000018", "0/1000000"},
		{"40 bytes into a page that starts no segment", g, "0/16B2028", "0/16B2028"},
		{"page boundary itself", g, "0/16B2000", "0/16B2000"},
		{"unknown geometry waits for the position as given", wal.Geometry{}, "0/16B2018", "0/16B2018"},
		{"larger segments", wal.Geometry{Page: 8192, Segment: 64 << 20}, "0/1000028", "0/1000028"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := authz.ParseLSN(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.geo.RecordEnd(in).String(); got != tt.want {
				t.Errorf("RecordEnd(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), testutil.NewEmptyTestDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestReadFromServer(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	g, err := wal.ReadGeometry(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	// A page is a power of two from 1 kB to 64 kB, a segment one from
	// 1 MB to 1 GB.
	if g.Page < 1<<10 || g.Page > 64<<10 || g.Page&(g.Page-1) != 0 ||
		g.Segment < 1<<20 || g.Segment > 1<<30 || g.Segment&(g.Segment-1) != 0 {
		t.Fatalf("ReadGeometry = %+v", g)
	}
	before, err := wal.InsertPosition(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `select pg_logical_emit_message(false, 'tenantgate-wal-test', '')`); err != nil {
		t.Fatal(err)
	}
	end, err := wal.InsertEnd(t.Context(), conn, g)
	if err != nil {
		t.Fatal(err)
	}
	after, err := wal.InsertPosition(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	// The message is a record past before, so its end is too; and a record
	// end is never past the insert position read after it.
	if !(before < end && end <= after) {
		t.Errorf("insert position %s, then record end %s, then insert position %s", before, end, after)
	}
}

// TestScanPgLSN: pgx has no codec for pg_lsn and hands its text form to
// authz.LSN's Scan, in every query mode; that is what lets the store and the
// sync scan positions without a ::text and a parse of their own.
func TestScanPgLSN(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	for _, mode := range []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec,
		pgx.QueryExecModeSimpleProtocol,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			var zero, mid, top authz.LSN
			err := conn.QueryRow(t.Context(), `select '0/0'::pg_lsn, $1::pg_lsn, 'FFFFFFFF/FFFFFFFF'::pg_lsn`,
				mode, "16/B374D848").Scan(&zero, &mid, &top)
			if err != nil {
				t.Fatal(err)
			}
			if zero != 0 || mid != 0x16B374D848 || top != 1<<64-1 {
				t.Errorf("scanned %s, %s, %s", zero, mid, top)
			}
			var missing *authz.LSN
			if err := conn.QueryRow(t.Context(), `select null::pg_lsn`, mode).Scan(&missing); err != nil || missing != nil {
				t.Errorf("NULL into *authz.LSN = %v, %v; want nil", missing, err)
			}
			var null authz.LSN
			if err := conn.QueryRow(t.Context(), `select null::pg_lsn`, mode).Scan(&null); err == nil {
				t.Errorf("NULL into authz.LSN = %s, want an error", null)
			}
		})
	}
	var batched authz.LSN
	batch := &pgx.Batch{}
	batch.Queue(`select '1/2'::pg_lsn`).QueryRow(func(row pgx.Row) error { return row.Scan(&batched) })
	if err := conn.SendBatch(t.Context(), batch).Close(); err != nil || batched != 1<<32|2 {
		t.Errorf("batch scanned %s, %v; want 1/2", batched, err)
	}
}
