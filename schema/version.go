package schema

import (
	"fmt"
	"regexp"
	"strconv"
)

// Version numbers the schema text: every change to tenantgate.zed bumps it,
// which version_test.go enforces. `tenantgate migrate` writes the schema
// only over an older version, and serve and sync run only over this one or
// a newer compatible one.
const Version = 1

// OldestCompatible is the oldest Version whose tenantgate still works over
// this schema. A change that only adds (expand) keeps it, so that a rollback
// leaves older processes running over the newer schema; a change that
// removes or redefines what older versions use (contract) raises it to the
// first version that no longer uses it.
const OldestCompatible = 1

// Stamp is what a schema text says about its version.
type Stamp struct {
	Version, OldestCompatible int
}

// Current is the stamp of Schema.
var Current = Stamp{Version: Version, OldestCompatible: OldestCompatible}

// marker is the doc comment that carries the stamp. It sits on a definition
// because SpiceDB keeps a definition's comments and returns them from
// ReadSchema, so the stamp travels with the schema it describes.
var marker = regexp.MustCompile(`tenantgate schema version (\d+), oldest compatible (\d+)`)

// ParseStamp reads the stamp of a schema text as SpiceDB returns it. The
// zero Stamp means no tenantgate schema, or one written before schemas
// carried versions; ok is false then.
func ParseStamp(text string) (s Stamp, ok bool, err error) {
	m := marker.FindStringSubmatch(text)
	if m == nil {
		return Stamp{}, false, nil
	}
	if s.Version, err = strconv.Atoi(m[1]); err != nil {
		return Stamp{}, false, fmt.Errorf("schema: version %q: %w", m[1], err)
	}
	if s.OldestCompatible, err = strconv.Atoi(m[2]); err != nil {
		return Stamp{}, false, fmt.Errorf("schema: oldest compatible %q: %w", m[2], err)
	}
	return s, true, nil
}

// String is the stamp as the schema text carries it.
func (s Stamp) String() string {
	return fmt.Sprintf("tenantgate schema version %d, oldest compatible %d", s.Version, s.OldestCompatible)
}

// Serves reports whether a tenantgate that needs schema version need runs
// over a schema stamped s: s must include everything need has, and must not
// have contracted away anything need still uses.
func (s Stamp) Serves(need int) bool {
	return s.Version >= need && s.OldestCompatible <= need
}
