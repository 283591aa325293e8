package spicedb

import (
	"errors"
	"testing"

	"github.com/authzed/spicedb/pkg/zedtoken"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// tokenAt is a ZedToken of revision rev of engine.
func tokenAt(t *testing.T, p revisionParser, rev string) string {
	t.Helper()
	r, err := p(rev)
	if err != nil {
		t.Fatalf("revision %q: %v", rev, err)
	}
	tok, err := zedtoken.NewFromRevisionNoDatastoreID(r, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok.GetToken()
}

// TestFreshestNeverReadsOlderThanTheFloor: a caller's token replaces the
// floor only when its revision is newer. (Postgres revisions, snapshots in
// a protobuf, are compared with real tokens in internal/app's
// TestOldTokenNeverReadsOlderThanTheFloor/remote.)
func TestFreshestNeverReadsOlderThanTheFloor(t *testing.T) {
	p, err := parserFor("memory")
	if err != nil {
		t.Fatal(err)
	}
	older, newer := tokenAt(t, p, "1000"), tokenAt(t, p, "2000")
	for _, tc := range []struct {
		name, given, floor, want string
	}{
		{"no token: the floor", "", newer, newer},
		{"no floor: the token", older, "", older},
		{"neither", "", "", ""},
		{"an older token: the floor", older, newer, newer},
		{"a newer token: the token", newer, older, newer},
		{"the floor itself", newer, newer, newer},
		{"a floor that does not decode still holds", newer, "not-a-token", "not-a-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.freshest(tc.given, tc.floor)
			if err != nil || got != tc.want {
				t.Errorf("freshest = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := p.freshest("not-a-token", newer); !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("a caller's token that does not decode = %v, want ErrInvalid", err)
	}
	if _, err := parserFor("oracle"); err == nil {
		t.Error("an unknown engine was accepted")
	}
}
