package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an answer of the gateway outside 2xx: an RFC 9457 problem
// document, or, from something in front of the gateway that does not speak
// them (a proxy's 502), the status alone.
type Error struct {
	// Op is the call that failed ("check", "put member", ...).
	Op     string
	Status int
	Type   string
	Title  string
	// Detail is in the gateway's words, for the caller; the gateway sends
	// it for 400, 401, 403, 405, 409, 413, 415 and 501 only. The cause of
	// a 500 or 503 is in the gateway's log line with RequestID.
	Detail    string
	RequestID string
	// RetryAfter is how long the gateway asked to wait before a retry
	// (with 503); zero when it did not say.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tenantgate: ")
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	fmt.Fprintf(&b, "%d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrForbidden) and the like true for an *Error of
// that status, so callers need not compare numbers.
func (e *Error) Is(target error) bool {
	k, ok := target.(statusKind)
	return ok && int(k) == e.Status
}

// statusKind is a sentinel standing for every *Error of one status. It is
// a comparable value rather than an *Error so that no caller can change
// what a sentinel means.
type statusKind int

func (k statusKind) Error() string {
	return "tenantgate: " + strings.ToLower(http.StatusText(int(k)))
}

// Sentinels for errors.Is, one per status the gateway answers with.
var (
	ErrBadRequest     error = statusKind(http.StatusBadRequest)
	ErrUnauthorized   error = statusKind(http.StatusUnauthorized)
	ErrForbidden      error = statusKind(http.StatusForbidden)
	ErrNotFound       error = statusKind(http.StatusNotFound)
	ErrConflict       error = statusKind(http.StatusConflict)
	ErrTooLarge       error = statusKind(http.StatusRequestEntityTooLarge)
	ErrInternal       error = statusKind(http.StatusInternalServerError)
	ErrNotImplemented error = statusKind(http.StatusNotImplemented)
	ErrUnavailable    error = statusKind(http.StatusServiceUnavailable)
)

// ErrNoCredentials is returned, without a request being sent, by a call of
// a client that has neither a user's token (As) nor a service token.
var ErrNoCredentials = errors.New("tenantgate: no bearer token: use As with the user's token, or WithServiceToken")

// IsBadRequest reports an answer of 400: the request was malformed (an
// invalid ID, an unknown permission, a consistency token ahead of the
// database). It is also true for an ID that no URL path can carry ("",
// "." or ".."), which the client refuses without a request and without an
// *Error.
func IsBadRequest(err error) bool { return errors.Is(err, ErrBadRequest) }

// IsUnauthorized reports an answer of 401: the bearer token is missing,
// malformed, expired or not trusted.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsForbidden reports an answer of 403: the caller may not do this.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsNotFound reports an answer of 404.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports an answer of 409 (the last owner, a cycle, a tree too
// deep, an ID that exists).
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsUnavailable reports an answer of 503: the gateway could not answer now
// and asks for a retry. A network failure is not one: it is the transport's
// error, wrapped.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// maxProblemBytes bounds what is read of an error answer; a problem
// document is far smaller, and the rest of a proxy's error page is noise.
const maxProblemBytes = 64 << 10

// problemDocument is RFC 9457's format with the gateway's request_id.
type problemDocument struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// errorOf makes the *Error of a non-2xx answer. The status is the
// response's, whatever the body claims: only the status line is sure to
// come from the last hop.
func errorOf(op string, resp *http.Response, body []byte) *Error {
	e := &Error{Op: op, Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Type: "about:blank",
		RequestID: resp.Header.Get("X-Request-Id"), RetryAfter: retryAfter(resp.Header)}
	var doc problemDocument
	if isProblem(resp.Header) && json.Unmarshal(body, &doc) == nil {
		e.Detail = doc.Detail
		if doc.Title != "" {
			e.Title = doc.Title
		}
		if doc.Type != "" {
			e.Type = doc.Type
		}
		if doc.RequestID != "" {
			e.RequestID = doc.RequestID
		}
	}
	return e
}

func isProblem(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), problemContentType)
}

// retryAfter reads Retry-After in seconds; the gateway never sends a date.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
