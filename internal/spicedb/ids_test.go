package spicedb

import (
	"regexp"
	"testing"
)

var spiceDBAlphabet = regexp.MustCompile(`^[a-zA-Z0-9/_|\-=+]+$`)

func validObjectID(s string) bool { return len(s) <= 1024 && spiceDBAlphabet.MatchString(s) }

func TestEncodeIDRoundTrip(t *testing.T) {
	tests := []struct {
		id          string
		passThrough bool
	}{
		{"acme", true},
		{"acme-holding_2/x|y+z", true},
		{"a.b@c", false},
		{"alice@example.com", false},
		{"with space", false},
		{"zürich-ünicode-日本", false},
		{"a=b", false},
		{"=already-looks-encoded", false},
		{"*", false},
		{string(make([]byte, 500)), false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			enc := EncodeID(tt.id)
			if !validObjectID(enc) {
				t.Fatalf("EncodeID(%q) = %q, outside SpiceDB's alphabet", tt.id, enc)
			}
			if got := enc == tt.id; got != tt.passThrough {
				t.Errorf("EncodeID(%q) = %q, pass-through %v, want %v", tt.id, enc, got, tt.passThrough)
			}
			dec, err := decodeID(enc)
			if err != nil {
				t.Fatalf("decodeID(%q): %v", enc, err)
			}
			if dec != tt.id {
				t.Errorf("round trip of %q gave %q", tt.id, dec)
			}
		})
	}
}

func FuzzEncodeID(f *testing.F) {
	for _, s := range []string{"acme", "a.b@c", "=x", "日本", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" || len(id) > 700 {
			return
		}
		enc := EncodeID(id)
		if !validObjectID(enc) {
			t.Fatalf("EncodeID(%q) = %q, outside SpiceDB's alphabet", id, enc)
		}
		dec, err := decodeID(enc)
		if err != nil || dec != id {
			t.Fatalf("round trip of %q gave %q, %v", id, dec, err)
		}
	})
}

func TestDecodeIDRejectsCorruptEncoding(t *testing.T) {
	if _, err := decodeID("=not base64!"); err == nil {
		t.Fatal("decodeID accepted a corrupt encoded id")
	}
}
