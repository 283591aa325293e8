package authz

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseLSN: every WAL position survives its text form, whatever the
// case and leading zeros it was written with; anything ParseLSN refuses is
// an ErrInvalid (a 400 at the edge, never a 500); Scan reads exactly what
// ParseLSN reads.
func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "ffffffff/ffffffff", "00000000/00000001", "123456789/0", "0/", "/0", "/", "0/1/2",
		"-1/0", "+1/0", "0x1/0", " 0/1", "0/1\n", "0/1\x00", "０/１", "0/1'; drop table companies; --", "\xff/\xfe"} {
		f.Add(s, uint64(0x16B374D848))
	}
	f.Fuzz(func(t *testing.T, s string, n uint64) {
		if got, err := ParseLSN(LSN(n).String()); err != nil || got != LSN(n) {
			t.Fatalf("LSN %#x: %q reads back as %v, %v", n, LSN(n).String(), got, err)
		}
		l, err := ParseLSN(s)
		var scanned LSN
		scanErr := scanned.Scan(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseLSN(%q) = %v: not an ErrInvalid", s, err)
			}
			if scanErr == nil {
				t.Fatalf("Scan(%q) took what ParseLSN refuses: %v", s, scanned)
			}
			return
		}
		if scanErr != nil || scanned != l {
			t.Fatalf("Scan(%q) = %v, %v; ParseLSN gives %v", s, scanned, scanErr, l)
		}
		if again, err := ParseLSN(l.String()); err != nil || again != l {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, l, l.String(), again, err)
		}
		// The text form is the input with each half's leading zeros
		// dropped, in upper case.
		hi, lo, _ := strings.Cut(s, "/")
		if want := strings.ToUpper(trimZeros(hi) + "/" + trimZeros(lo)); l.String() != want {
			t.Fatalf("ParseLSN(%q).String() = %q, want %q", s, l.String(), want)
		}
	})
}

func trimZeros(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}

// FuzzValidateIDs: an accepted company or user ID is non-empty, at most
// MaxIDBytes, valid UTF-8 and free of control characters (so no NUL, no
// line break, nothing a log line or SpiceDB's encoding trips on); every
// printable ID within the bound is accepted; every refusal is an
// ErrInvalid.
func FuzzValidateIDs(f *testing.F) {
	for _, s := range []string{"acme", "a.b@c", "..%2F", "..", ".", "a#b", "a/../b", "*", "a\x00b", "a\xffb", "\xed\xa0\x80",
		"a\u0085b", "a\u202eb", "a\tb", "a b", "日本", strings.Repeat("x", MaxIDBytes), strings.Repeat("x", MaxIDBytes+1),
		strings.Repeat("é", MaxIDBytes/2) + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		companyErr, userErr, newErr := ValidateCompanyID(id), ValidateUserID(id), ValidateNewCompanyID(id)
		for _, err := range []error{companyErr, userErr, newErr} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: %v is not an ErrInvalid", id, err)
			}
		}
		if companyErr == nil {
			switch {
			case id == "" || len(id) > MaxIDBytes:
				t.Fatalf("accepted an ID of %d bytes", len(id))
			case !utf8.ValidString(id):
				t.Fatalf("accepted %q, which is not UTF-8", id)
			case strings.ContainsFunc(id, unicode.IsControl):
				t.Fatalf("accepted %q, which holds a control character", id)
			}
		}
		printable := id != "" && len(id) <= MaxIDBytes && utf8.ValidString(id) && !strings.ContainsFunc(id, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' })
		if printable && companyErr != nil {
			t.Fatalf("refused the printable ID %q: %v", id, companyErr)
		}
		// The user and new-company rules only add to the company rule.
		if want := companyErr == nil && id != WildcardUser; (userErr == nil) != want {
			t.Fatalf("ValidateUserID(%q) = %v, company rule %v", id, userErr, companyErr)
		}
		if want := companyErr == nil && id != "." && id != ".."; (newErr == nil) != want {
			t.Fatalf("ValidateNewCompanyID(%q) = %v, company rule %v", id, newErr, companyErr)
		}
	})
}
