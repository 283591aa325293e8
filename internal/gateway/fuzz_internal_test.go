package gateway

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// The round trips of what the gateway hands clients to bring back: list
// cursors, AuthZEN page tokens, and the classification of consistency
// tokens. fuzz_test.go drives the same inputs through the routes.

// FuzzCursorRoundTrip: a cursor the gateway made gives back the
// Authorizer's cursor it wraps, for its own permission and listing only;
// any other string is refused with an ErrInvalid (a 400), or, since
// cursors are not signed, read as a non-empty position in the caller's own
// listing that re-encodes to the same position.
func FuzzCursorRoundTrip(f *testing.F) {
	for _, s := range []string{"", "!!!", "c1", base64.RawURLEncoding.EncodeToString([]byte(`{"permission":"read","cursor":"c1"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"permission":"read","all":true,"cursor":"acme"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"Permission":"read","CURSOR":"x","extra":1}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"permission":"read","cursor":""}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`)),
		base64.StdEncoding.EncodeToString([]byte(`{"permission":"read","cursor":"c1"}`)), strings.Repeat("A", maxCursorBytes+1)} {
		f.Add(uint8(0), false, "c1", s)
	}
	f.Fuzz(func(t *testing.T, perm uint8, all bool, backend, forged string) {
		p := authz.Permissions[int(perm)%len(authz.Permissions)]
		// The Authorizer's cursors, and company IDs from Postgres, are
		// UTF-8; JSON could carry nothing else.
		if backend != "" && utf8.ValidString(backend) {
			enc := encodeCursor(p, all, backend)
			got, err := decodeCursor(enc, p, all)
			switch {
			case len(enc) > maxCursorBytes:
				if err == nil {
					t.Fatalf("a cursor of %d bytes was taken", len(enc))
				}
			case err != nil || got != backend:
				t.Fatalf("cursor of %q round trips to %q, %v", backend, got, err)
			}
			other := authz.Permissions[(int(perm)+1)%len(authz.Permissions)]
			if _, err := decodeCursor(enc, other, all); err == nil {
				t.Fatalf("a cursor of permission %s was taken for %s", p, other)
			}
			if _, err := decodeCursor(enc, p, !all); err == nil {
				t.Fatalf("a cursor of the listing all=%v was taken for all=%v", all, !all)
			}
		}
		got, err := decodeCursor(forged, p, all)
		if err != nil {
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("decodeCursor(%q) = %v: not an ErrInvalid", forged, err)
			}
			return
		}
		if got == "" {
			t.Fatalf("decodeCursor(%q) took an empty position", forged)
		}
		if again, err := decodeCursor(encodeCursor(p, all, got), p, all); len(encodeCursor(p, all, got)) <= maxCursorBytes && (err != nil || again != got) {
			t.Fatalf("position %q from %q does not round trip: %q, %v", got, forged, again, err)
		}
	})
}

// FuzzPageTokenRoundTrip: a page token the gateway made resumes exactly
// where its page ended, with its limit and listing, for its own search
// only; any other string is refused with an ErrInvalid, or read as a
// position within the bounds of the search it was sent with.
func FuzzPageTokenRoundTrip(f *testing.F) {
	key := searchKey("resource", "alice", "read")
	valid := azPageToken{Search: key, Limit: 2}.next("acme", false)
	for _, s := range []string{"", "!!", valid, valid + "A", strings.ToUpper(valid), strings.Repeat("A", maxCursorBytes+1),
		base64.RawURLEncoding.EncodeToString([]byte(`{"s":"` + key + `","a":"x","l":1000000000}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"s":"` + key + `","a":"x","l":-1}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"s":"` + key + `","a":"","l":5}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"s":"other","a":"x","l":5}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"s":"` + key + `","a":"x","l":1e3}`))} {
		f.Add("acme", 2, false, s)
	}
	g := &Gateway{cfg: Config{}.withDefaults()}
	f.Fuzz(func(t *testing.T, after string, limit int, all bool, forged string) {
		if after != "" && utf8.ValidString(after) && limit >= 1 && limit <= g.cfg.MaxPageSize {
			token := azPageToken{Search: key, Limit: limit}.next(after, all)
			got, err := g.pageOf(&azPage{Token: &token}, key)
			switch {
			case len(token) > maxCursorBytes:
				if err == nil {
					t.Fatalf("a token of %d bytes was taken", len(token))
				}
			case err != nil || got.After != after || got.Limit != limit || got.All != all:
				t.Fatalf("token after %q, limit %d, all %v comes back as %+v, %v", after, limit, all, got, err)
			}
			if _, err := g.pageOf(&azPage{Token: &token}, searchKey("resource", "bob", "read")); err == nil {
				t.Fatalf("alice's token was taken for bob's search")
			}
			if other := limit%g.cfg.MaxPageSize + 1; other != limit {
				if _, err := g.pageOf(&azPage{Token: &token, Limit: &other}, key); err == nil {
					t.Fatalf("a token of limit %d was taken with limit %d", limit, other)
				}
			}
		}
		got, err := g.pageOf(&azPage{Token: &forged, Limit: &limit}, key)
		if err != nil {
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("pageOf(%q, %d) = %v: not an ErrInvalid", forged, limit, err)
			}
			return
		}
		if got.Search != key || got.Limit < 1 || got.Limit > g.cfg.MaxPageSize || (forged != "" && got.After == "") {
			t.Fatalf("pageOf(%q, %d) = %+v: outside the search or its bounds", forged, limit, got)
		}
	})
}

// FuzzLSNToken: every consistency token is exactly one of a ZedToken,
// passed on as it is; a WAL position, the one authz.ParsePosition reads; or
// refused with an ErrInvalid because it is written like a position but is
// none. Nothing in between, so no token is sent to SpiceDB that was meant
// as a position, nor waited for that was not one.
func FuzzLSNToken(f *testing.F) {
	for _, s := range []string{"", "0/16B3748", "FFFFFFFF/FFFFFFFF", "123456789/0", "0/", "/", "0/1/2", "-1/0", "zed/abc",
		"Gh8KEzE3OTU2MDg0Mjg5NDUyOTYwODgSCGU1MjVmZDY5", "0/1\x00", "０/１", "0/1 ", "\xff/0",
		"0/16B3748@1", "0/1@", "0/1@0", "0/1@-1", "0/1@ 2", "0/1@99999999999", "0/1@2@3", "zed@1"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, token, other string) {
		lsn, isLSN, err := lsnToken(token)
		parsed, parseErr := authz.ParsePosition(token)
		positionShaped := strings.Contains(token, "@") ||
			strings.Count(token, "/") == 1 && strings.Trim(token, "0123456789abcdefABCDEF/") == ""
		switch {
		case err != nil:
			if !errors.Is(err, authz.ErrInvalid) || isLSN || !positionShaped || parseErr == nil {
				t.Fatalf("lsnToken(%q) = %v, %v, %v", token, lsn, isLSN, err)
			}
		case isLSN:
			if parseErr != nil || lsn != parsed {
				t.Fatalf("lsnToken(%q) = %v; ParsePosition gives %v, %v", token, lsn, parsed, parseErr)
			}
		default:
			if positionShaped || parseErr == nil {
				t.Fatalf("lsnToken(%q) took a position for a ZedToken", token)
			}
		}
		// Header and body agree, or the request is refused.
		h := map[string][]string{consistencyHeader: {other}}
		got, err := consistencyToken(h, token)
		switch {
		case err != nil:
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("consistencyToken(%q, %q) = %v: not an ErrInvalid", other, token, err)
			}
			if token != "" && other != "" && token != other || len(token) > maxConsistencyTokenBytes || len(other) > maxConsistencyTokenBytes {
				return
			}
			t.Fatalf("consistencyToken(%q, %q) refused agreeing tokens: %v", other, token, err)
		case token != "" && other != "" && token != other:
			t.Fatalf("consistencyToken took header %q and body %q, which differ", other, token)
		case got != token && got != other || len(got) > maxConsistencyTokenBytes:
			t.Fatalf("consistencyToken(%q, %q) = %q", other, token, got)
		}
	})
}
