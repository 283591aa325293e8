package authz

import (
	"errors"
	"fmt"
	"math"
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

// Position is a WAL position in one history of the database: what a write
// answers as its consistency token, like 0/16B3748@1. After a failover or a
// restore PostgreSQL continues on a new timeline, whose WAL may reuse the
// positions of writes that the old one had and the new one lost; the
// timeline tells them apart.
type Position struct {
	LSN LSN
	// Timeline is the timeline LSN was read on; 0 for a bare LSN (what an
	// application that writes rows itself may read after its commit),
	// which names none and so is taken on whichever timeline the database
	// is.
	Timeline uint32
}

// timelineText is a timeline in decimal without sign or leading zero:
// PostgreSQL's start at 1.
var timelineText = regexp.MustCompile(`^[1-9][0-9]*$`)

// ParsePosition reads an LSN in PostgreSQL's text form, optionally
// followed by '@' and its timeline in decimal, like 0/16B3748@1; anything
// else is an ErrInvalid.
func ParsePosition(s string) (Position, error) {
	lsnPart, timeline, qualified := strings.Cut(s, "@")
	lsn, err := ParseLSN(lsnPart)
	if err != nil || !qualified {
		return Position{LSN: lsn}, err
	}
	// ParseUint refuses what exceeds 32 bits.
	tl, err := strconv.ParseUint(timeline, 10, 32)
	if err != nil || !timelineText.MatchString(timeline) {
		return Position{}, fmt.Errorf("%w: %q is not a timeline from 1 to %d after the WAL position", ErrInvalid, timeline, uint32(math.MaxUint32))
	}
	return Position{LSN: lsn, Timeline: uint32(tl)}, nil
}

// String is the text ParsePosition reads: the bare LSN when the timeline
// is unknown.
func (p Position) String() string {
	if p.Timeline == 0 {
		return p.LSN.String()
	}
	return fmt.Sprintf("%s@%d", p.LSN, p.Timeline)
}

// Scan implements database/sql's Scanner, so that a pg_lsn column is read
// straight into an LSN: pgx, which has no codec of its own for pg_lsn, and
// database/sql drivers hand it over in its text form. A NULL is no
// position (coalesce it in SQL where one stands for zero). A value that is
// not an LSN is an error of no kind: it comes from the database, never
// from a caller.
func (l *LSN) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		return errors.New("scan lsn: NULL is not a WAL position")
	default:
		return fmt.Errorf("scan lsn: cannot read a %T as a WAL position", src)
	}
	lsn, err := ParseLSN(s)
	if err != nil {
		return fmt.Errorf("scan lsn: %q is not a WAL position", s)
	}
	*l = lsn
	return nil
}
