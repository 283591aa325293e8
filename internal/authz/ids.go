package authz

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIDBytes bounds company and user IDs. SpiceDB object IDs hold at most
// 1024 characters and the reversible encoding of an arbitrary ID may double
// its length, so 500 bytes always fit.
const MaxIDBytes = 500

// WildcardUser is SpiceDB's "every subject"; it is never a user.
const WildcardUser = "*"

// ValidateCompanyID checks an opaque company ID.
func ValidateCompanyID(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("company id: %w", err)
	}
	return nil
}

// ValidateNewCompanyID checks the ID of a company about to be created. "."
// and ".." are path segments that URL resolution removes, so no route could
// ever address such a company. Existing IDs are not held to this: a check
// on "." is a plain "not allowed".
func ValidateNewCompanyID(id string) error {
	if id == "." || id == ".." {
		return fmt.Errorf("company id: %w: %q cannot be used in a URL path", ErrInvalid, id)
	}
	return ValidateCompanyID(id)
}

// ValidateUserID checks an opaque user ID; the wildcard is refused so that no
// row or request can ever grant something to everybody.
func ValidateUserID(id string) error {
	if id == WildcardUser {
		return fmt.Errorf("user id: %w: %q is not a user", ErrInvalid, id)
	}
	if err := validateID(id); err != nil {
		return fmt.Errorf("user id: %w", err)
	}
	return nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalid)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: contains a control character", ErrInvalid)
		}
	}
	return nil
}
