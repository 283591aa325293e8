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

// Hide gives a backend's error (PostgreSQL's, SpiceDB's) a kind and a
// message in our own words: the message of ErrInvalid, ErrConflict and
// ErrNotFound reaches callers and the audit trail, and a backend's own
// names tables, constraints and values. The cause stays in the chain for
// errors.Is and errors.As, and its text reaches the log through Cause.
func Hide(kind error, words string, cause error) error {
	return &hiddenError{kind: kind, words: words, cause: cause}
}

type hiddenError struct {
	kind  error
	words string
	cause error
}

func (e *hiddenError) Error() string   { return e.kind.Error() + ": " + e.words }
func (e *hiddenError) Unwrap() []error { return []error{e.kind, e.cause} }

// Cause is the backend's text that Hide kept out of err's message, or "".
func Cause(err error) string {
	var hidden *hiddenError
	if errors.As(err, &hidden) {
		return hidden.cause.Error()
	}
	return ""
}
