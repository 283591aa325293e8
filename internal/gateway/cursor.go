package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// maxCursorBytes bounds a client cursor before it is decoded.
const maxCursorBytes = 4096

// pageCursor is what a client's opaque cursor holds. Binding the permission
// in makes a cursor replayed with another permission an error instead of a
// page of a different listing.
// All marks a listing of every company (a platform role's), whose cursor
// is a company ID rather than the Authorizer's.
type pageCursor struct {
	Permission authz.Permission `json:"permission"`
	All        bool             `json:"all,omitempty"`
	Cursor     string           `json:"cursor"`
}

func encodeCursor(p authz.Permission, all bool, backend string) string {
	// Marshalling strings and a bool cannot fail.
	b, _ := json.Marshal(pageCursor{Permission: p, All: all, Cursor: backend})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the Authorizer's cursor inside a client cursor for
// permission p. Cursors are not signed: one a client makes up names a
// position in its own listing, which grants nothing, so what is checked is
// only its form and its permission.
func decodeCursor(s string, p authz.Permission, all bool) (string, error) {
	invalid := fmt.Errorf("%w: malformed cursor: pass next_cursor from the previous page as it is", authz.ErrInvalid)
	if len(s) > maxCursorBytes {
		return "", invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", invalid
	}
	var c pageCursor
	if err := json.Unmarshal(b, &c); err != nil || c.Cursor == "" {
		return "", invalid
	}
	if c.Permission != p {
		return "", fmt.Errorf("%w: cursor belongs to a listing for permission %q", authz.ErrInvalid, c.Permission)
	}
	if c.All != all {
		return "", fmt.Errorf("%w: cursor belongs to another listing: your platform role changed; start again without a cursor", authz.ErrInvalid)
	}
	return c.Cursor, nil
}
