package gateway

import "testing"

// TestFoldASCIIIsFoldKey: the fast path folds every ASCII key exactly as
// the rune-by-rune fold does, and leaves other keys to it.
func TestFoldASCIIIsFoldKey(t *testing.T) {
	keys := []string{"", "permission", "Permission", "PERMISSION", "consistency_token", "a1-B2_c3.{}", "\x00\x7f"}
	for c := range 128 {
		keys = append(keys, string(rune(c)))
	}
	for _, k := range keys {
		got, ok := foldASCII(k)
		if want := foldRunes(k); !ok || got != want {
			t.Errorf("foldASCII(%q) = %q, %v; foldRunes gives %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"\u212a", "ſ", "perḿission"} {
		if _, ok := foldASCII(k); ok {
			t.Errorf("foldASCII(%q) took a key that is not ASCII", k)
		}
	}
}
