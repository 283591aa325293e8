package schema_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/tenantgate/tenantgate/schema"
)

// released pins the text of every schema version by its SHA-256, so that a
// change to tenantgate.zed without a new schema.Version fails here: a
// changed text under an old version would make `tenantgate migrate` skip it
// on every SpiceDB that holds that version already.
var released = map[int]string{
	1: "c2fc2a360adcb0c11485c709448fcdfa5686aa6552b5ffca492521c340a2050c",
}

func TestVersionPinsText(t *testing.T) {
	sum := sha256.Sum256([]byte(schema.Schema))
	got := hex.EncodeToString(sum[:])
	want, ok := released[schema.Version]
	if !ok {
		t.Fatalf("schema.Version %d is not in released; add %d: %q", schema.Version, schema.Version, got)
	}
	if got != want {
		t.Fatalf("tenantgate.zed changed under schema.Version %d (sha256 %s, released as %s): bump schema.Version, and OldestCompatible if the change removes or redefines anything, then pin the new hash in released",
			schema.Version, got, want)
	}
}

func TestSchemaCarriesItsStamp(t *testing.T) {
	got, ok, err := schema.ParseStamp(schema.Schema)
	if err != nil || !ok {
		t.Fatalf("ParseStamp(schema.Schema) = %v, %v, %v; want the version comment", got, ok, err)
	}
	if got != schema.Current {
		t.Fatalf("tenantgate.zed is stamped %+v; the constants say %+v", got, schema.Current)
	}
	if schema.OldestCompatible > schema.Version {
		t.Fatalf("OldestCompatible %d is newer than Version %d", schema.OldestCompatible, schema.Version)
	}
}

func TestStampServes(t *testing.T) {
	tests := []struct {
		name  string
		stamp schema.Stamp
		need  int
		want  bool
	}{
		{"same version", schema.Stamp{Version: 2, OldestCompatible: 1}, 2, true},
		{"older schema", schema.Stamp{Version: 1, OldestCompatible: 1}, 2, false},
		{"newer expanded schema", schema.Stamp{Version: 3, OldestCompatible: 1}, 2, true},
		{"newer contracted schema", schema.Stamp{Version: 3, OldestCompatible: 3}, 2, false},
		{"contracted down to exactly this one", schema.Stamp{Version: 3, OldestCompatible: 2}, 2, true},
		{"no schema", schema.Stamp{}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.stamp.Serves(tt.need); got != tt.want {
				t.Errorf("%+v.Serves(%d) = %v, want %v", tt.stamp, tt.need, got, tt.want)
			}
		})
	}
}

func TestParseStamp(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		want   schema.Stamp
		wantOK bool
	}{
		{"none", "", schema.Stamp{}, false},
		{"unversioned", "definition user {}", schema.Stamp{}, false},
		{"as SpiceDB returns it", "/** tenantgate schema version 7, oldest compatible 5 */\ndefinition user {}", schema.Stamp{Version: 7, OldestCompatible: 5}, true},
		{"its own String", schema.Stamp{Version: 3, OldestCompatible: 2}.String(), schema.Stamp{Version: 3, OldestCompatible: 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := schema.ParseStamp(tt.text)
			if err != nil || got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseStamp(%q) = %+v, %v, %v; want %+v, %v, nil", tt.text, got, ok, err, tt.want, tt.wantOK)
			}
		})
	}
}
