package authz

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's write-ahead log. The consistency token
// of a write is the LSN read after its commit; a read that carries one must
// reflect every transaction that ended at or before it.
type LSN uint64

// lsnText is PostgreSQL's text form of an LSN: two hex halves of 32 bits.
var lsnText = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

// ParseLSN reads an LSN in PostgreSQL's text form, like 16/B374D848;
// anything else is an ErrInvalid.
func ParseLSN(s string) (LSN, error) {
	if !lsnText.MatchString(s) {
		return 0, fmt.Errorf("%w: %q is not a WAL position like 0/16B3748", ErrInvalid, s)
	}
	hi, lo, _ := strings.Cut(s, "/")
	// Both halves are at most 8 hex digits, so neither can fail.
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return LSN(h<<32 | l), nil
}

// String is PostgreSQL's text form.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// Page header sizes of WAL on 64-bit servers (SizeOfXLogShortPHD and
// SizeOfXLogLongPHD); the long one starts every segment.
const (
	walShortPageHeader = 24
	walLongPageHeader  = 40
)

// WALGeometry is a server's WAL page and segment size.
type WALGeometry struct {
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
func (g WALGeometry) RecordEnd(l LSN) LSN {
	switch {
	case g.Segment > 0 && uint64(l)%g.Segment == walLongPageHeader:
		return l - walLongPageHeader
	case g.Page > 0 && uint64(l)%g.Page == walShortPageHeader:
		return l - walShortPageHeader
	}
	return l
}
