package authz

import (
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

func TestRecordEnd(t *testing.T) {
	g := WALGeometry{Page: 8192, Segment: 16 << 20}
	tests := []struct {
		name string
		geo  WALGeometry
		in   string
		want string
	}{
		{"inside a page", g, "0/16B3748", "0/16B3748"},
		{"past a page header", g, "0/16B2018", "0/16B2000"},
		{"past a segment's long header", g, "1/1000028", "1/1000000"},
		{"24 bytes into a segment is inside its header", g, "0/1000018", "0/1000000"},
		{"40 bytes into a page that starts no segment", g, "0/16B2028", "0/16B2028"},
		{"page boundary itself", g, "0/16B2000", "0/16B2000"},
		{"unknown geometry waits for the position as given", WALGeometry{}, "0/16B2018", "0/16B2018"},
		{"larger segments", WALGeometry{Page: 8192, Segment: 64 << 20}, "0/1000028", "0/1000028"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseLSN(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.geo.RecordEnd(in).String(); got != tt.want {
				t.Errorf("RecordEnd(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
