package authz

import (
	"database/sql"
	"errors"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]LSN{
		"0/0":               0,
		"0/16B3748":         0x16B3748,
		"16/b374d848":       0x16B374D848,
		"FFFFFFFF/FFFFFFFF": 1<<64 - 1,
	} {
		got, err := ParseLSN(in)
		if err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "zed", "0/1/2", "123456789/0", " 0/1", "0/", "/1", "0/1'; drop table companies; --"} {
		if _, err := ParseLSN(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseLSN(%q) = %v, want an invalid argument", bad, err)
		}
	}
	if got := LSN(0x16B374D848).String(); got != "16/B374D848" {
		t.Errorf("String = %q", got)
	}
}

// pg_lsn columns are scanned into an LSN (see internal/wal's tests for
// pgx handing one over); database/sql drivers give text or bytes.
var _ sql.Scanner = (*LSN)(nil)

func TestLSNScan(t *testing.T) {
	for _, tt := range []struct {
		src  any
		want LSN
	}{
		{"0/0", 0},
		{"16/B374D848", 0x16B374D848},
		{[]byte("FFFFFFFF/FFFFFFFF"), 1<<64 - 1},
	} {
		var got LSN = 7
		if err := got.Scan(tt.src); err != nil || got != tt.want {
			t.Errorf("Scan(%#v) = %v, %v; want %v", tt.src, got, err, tt.want)
		}
	}
	for _, bad := range []any{nil, "", "0/1/2", "123456789/0", []byte("zed"), int64(1), uint64(1)} {
		got := LSN(7)
		// Of no kind: a bad value comes from the database, not a caller.
		if err := got.Scan(bad); err == nil || errors.Is(err, ErrInvalid) || got != 7 {
			t.Errorf("Scan(%#v) = %v, %v; want an error of no kind and the LSN untouched", bad, got, err)
		}
	}
}

func TestParsePosition(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Position
	}{
		{"0/16B3748", Position{LSN: 0x16B3748}},
		{"0/16B3748@1", Position{LSN: 0x16B3748, Timeline: 1}},
		{"16/b374d848@12", Position{LSN: 0x16B374D848, Timeline: 12}},
		{"FFFFFFFF/FFFFFFFF@4294967295", Position{LSN: 1<<64 - 1, Timeline: 1<<32 - 1}},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePosition(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParsePosition(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "@1", "zed@1", "0/1@", "0/1@0", "0/1@01", "0/1@-1", "0/1@+1", "0/1@ 2", "0/1@2 ",
		"0/1@99999999999", "0/1@4294967296", "0/1@2@3", "0/1@0x2", "0/1@２", " 0/1@1", "123456789/0@1"} {
		t.Run(bad, func(t *testing.T) {
			if got, err := ParsePosition(bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("ParsePosition(%q) = %+v, %v; want an invalid argument", bad, got, err)
			}
		})
	}
}

func TestPositionString(t *testing.T) {
	for _, tt := range []struct {
		p    Position
		want string
	}{
		{Position{LSN: 0x16B3748}, "0/16B3748"},
		{Position{LSN: 0x16B3748, Timeline: 1}, "0/16B3748@1"},
		{Position{LSN: 0x16B374D848, Timeline: 1<<32 - 1}, "16/B374D848@4294967295"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Fatalf("String = %q, want %q", got, tt.want)
			}
			if back, err := ParsePosition(tt.want); err != nil || back != tt.p {
				t.Fatalf("ParsePosition(%q) = %+v, %v; want %+v", tt.want, back, err, tt.p)
			}
		})
	}
}
