// Package wal reads where PostgreSQL's write-ahead log stands: the server's
// WAL geometry (page and segment size), its insert position, and that
// position as the end of the last record written. internal/store (a
// gateway's view of a sync in another process) and internal/mirror (the sync
// itself) both wait for positions read after commits, and both read them
// here, so they agree on which WAL a position covers.
package wal

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Querier runs one query: a pool, a pooled or a single connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Page header sizes of WAL on 64-bit servers (SizeOfXLogShortPHD and
// SizeOfXLogLongPHD); the long one starts every segment.
const (
	shortPageHeader = 24
	longPageHeader  = 40
)

// Geometry is a server's WAL page and segment size.
type Geometry struct {
	Page, Segment uint64
}

// RecordEnd turns an LSN read with pg_current_wal_insert_lsn() into the
// smallest position a record ending there could have. That function reports
// a position just past the page header when the last record ended exactly at
// a page boundary, while the replication stream, a slot's confirmed position
// and every commit end name the boundary itself: without this, a waiter for
// such a position would wait for the next WAL record after it, which on an
// idle server can take 15 s or more. No record ends inside a page header, so
// taking the header off never lets a waiter pass before its write is
// applied. An unknown geometry (zero) changes nothing: waiting longer is
// safe.
func (g Geometry) RecordEnd(l authz.LSN) authz.LSN {
	switch {
	case g.Segment > 0 && uint64(l)%g.Segment == longPageHeader:
		return l - longPageHeader
	case g.Page > 0 && uint64(l)%g.Page == shortPageHeader:
		return l - shortPageHeader
	}
	return l
}

// ReadGeometry reads the server's WAL page and segment size. They are fixed
// when the cluster is made, so a caller may keep them for as long as it
// talks to the same server.
func ReadGeometry(ctx context.Context, q Querier) (Geometry, error) {
	var page, segment int64
	err := q.QueryRow(ctx, `select current_setting('wal_block_size')::bigint,
			pg_size_bytes(current_setting('wal_segment_size'))`).Scan(&page, &segment)
	if err != nil {
		return Geometry{}, fmt.Errorf("read wal geometry: %w", err)
	}
	return Geometry{Page: uint64(page), Segment: uint64(segment)}, nil
}

// InsertPosition is the server's WAL insert position: past the end of every
// commit that has returned, whoever's connection made it.
func InsertPosition(ctx context.Context, q Querier) (authz.LSN, error) {
	var pos authz.LSN
	if err := q.QueryRow(ctx, `select pg_current_wal_insert_lsn()`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("read wal position: %w", err)
	}
	return pos, nil
}

// InsertEnd is the server's WAL insert position, as the end of the last
// record written (see Geometry.RecordEnd).
func InsertEnd(ctx context.Context, q Querier, g Geometry) (authz.LSN, error) {
	pos, err := InsertPosition(ctx, q)
	if err != nil {
		return 0, err
	}
	return g.RecordEnd(pos), nil
}
