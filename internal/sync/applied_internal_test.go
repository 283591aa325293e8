package sync

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestRecordEnd(t *testing.T) {
	g := walGeometry{page: 8192, segment: 16 << 20}
	tests := []struct {
		name string
		geo  walGeometry
		in   string
		want string
	}{
		{"inside a page", g, "0/16B3748", "0/16B3748"},
		{"past a page header", g, "0/16B2018", "0/16B2000"},
		{"past a segment's long header", g, "1/1000028", "1/1000000"},
		{"24 bytes into a segment is inside its header", g, "0/1000018", "0/1000000"},
		{"40 bytes into a page that starts no segment", g, "0/16B2028", "0/16B2028"},
		{"page boundary itself", g, "0/16B2000", "0/16B2000"},
		{"unknown geometry waits for the position as given", walGeometry{}, "0/16B2018", "0/16B2018"},
		{"larger segments", walGeometry{page: 8192, segment: 64 << 20}, "0/1000028", "0/1000028"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := pglogrepl.ParseLSN(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.geo.recordEnd(in).String(); got != tt.want {
				t.Errorf("recordEnd(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
