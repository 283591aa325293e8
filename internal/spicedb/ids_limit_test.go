package spicedb

import (
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// TestLongestIDsFitSpiceDB ties the encoding to the gateway's bound rather
// than to a number of its own: the worst case of every ID the gateway
// accepts (authz.MaxIDBytes of bytes that all need encoding) fits SpiceDB's
// object ID, and one byte more is refused before it gets here.
// FuzzEncodeID checks the round trip of everything shorter.
func TestLongestIDsFitSpiceDB(t *testing.T) {
	for _, id := range []string{
		strings.Repeat("\xff", authz.MaxIDBytes), // refused by the gateway, but the worst bytes
		strings.Repeat("é", authz.MaxIDBytes/2),  // the worst the gateway accepts
		strings.Repeat("a", authz.MaxIDBytes),    // passes through
		strings.Repeat("..%2F#", authz.MaxIDBytes/6),
	} {
		enc := EncodeID(id)
		if !validObjectID(enc) {
			t.Errorf("EncodeID of a %d-byte ID is %d characters or outside SpiceDB's alphabet", len(id), len(enc))
		}
		if dec, err := decodeID(enc); err != nil || dec != id {
			t.Errorf("round trip of a %d-byte ID failed: %v", len(id), err)
		}
	}
	if err := authz.ValidateCompanyID(strings.Repeat("a", authz.MaxIDBytes+1)); err == nil {
		t.Error("an ID over the bound is accepted, and might not fit SpiceDB")
	}
}
