package authz

import (
	"errors"
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
