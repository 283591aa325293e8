package spicedb

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// encodedPrefix marks an object ID that was base64url-encoded. '=' is in
// SpiceDB's alphabet but never passes through unencoded, so an ID starting
// with it can only be an encoded one and the mapping stays reversible.
const encodedPrefix = "="

// EncodeID maps any tenantgate ID onto SpiceDB's object ID alphabet
// [a-zA-Z0-9/_|\-=+]. IDs already made of safe characters pass through
// unchanged so that relationships stay readable in SpiceDB tooling.
func EncodeID(id string) string {
	if id != "" && strings.IndexFunc(id, needsEncoding) < 0 {
		return id
	}
	return encodedPrefix + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func needsEncoding(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	case r == '/' || r == '_' || r == '|' || r == '-' || r == '+':
		return false
	}
	return true
}

// decodeID reverses EncodeID.
func decodeID(objectID string) (string, error) {
	rest, ok := strings.CutPrefix(objectID, encodedPrefix)
	if !ok {
		return objectID, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("decode object id %q: %w", objectID, err)
	}
	return string(raw), nil
}
