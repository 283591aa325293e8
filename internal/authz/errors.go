package authz

import "errors"

// Kinds of failure every layer reports by wrapping one of these with %w. The
// HTTP edge maps each kind to one status code; nothing else inspects them.
var (
	// ErrInvalid is bad input; its message is safe to show the caller.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnauthenticated is a missing or unverifiable credential.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden is a verified caller asking for what it may not do.
	ErrForbidden = errors.New("permission denied")
	// ErrNotFound is an unknown object the caller may know does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a request that would break an invariant (cycle, last owner).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is a dependency (SpiceDB, Postgres) that cannot answer now.
	ErrUnavailable = errors.New("unavailable")
)
