package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/telemetry"
)

// Transport failures that have no domain kind of their own.
var (
	errBodyTooLarge         = errors.New("request body too large")
	errUnsupportedMediaType = errors.New("unsupported media type")
	errMethodNotAllowed     = errors.New("method not allowed")
	errNotImplemented       = errors.New("not implemented")
	errBodyTimeout          = errors.New("request timeout")
	errNoExplainer          = fmt.Errorf("%w: this gateway has no explainer", errNotImplemented)
)

// statusTable maps error kinds to HTTP statuses, first match wins. Only
// kinds whose messages are written for the caller expose them as detail;
// every other cause stays in the log.
var statusTable = []struct {
	kind       error
	status     int
	showDetail bool
}{
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, true},
	{errBodyTimeout, http.StatusRequestTimeout, true},
	{errUnsupportedMediaType, http.StatusUnsupportedMediaType, true},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, true},
	{errNotImplemented, http.StatusNotImplemented, true},
	{errRateLimited, http.StatusTooManyRequests, true},
	{authz.ErrInvalid, http.StatusBadRequest, true},
	{authz.ErrUnauthenticated, http.StatusUnauthorized, true},
	{authz.ErrForbidden, http.StatusForbidden, true},
	{authz.ErrNotFound, http.StatusNotFound, false},
	// Conflicts are the rules' own words (last owner, cycle, depth).
	{authz.ErrConflict, http.StatusConflict, true},
	{authz.ErrUnavailable, http.StatusServiceUnavailable, false},
}

// statusOf classifies err. An error of no known kind is 500: it is neither
// the caller's mistake nor an outage that waiting cures, so no Retry-After
// invites a retry; like every failure it is never an allow.
func statusOf(err error) (status int, detail string) {
	for _, row := range statusTable {
		if errors.Is(err, row.kind) {
			if row.showDetail {
				return row.status, err.Error()
			}
			return row.status, ""
		}
	}
	return http.StatusInternalServerError, ""
}

// problem answers with the problem document for err and logs its cause,
// with the backend's own text, which no answer carries, as "cause".
func (g *Gateway) problem(w http.ResponseWriter, r *http.Request, err error) {
	status, detail := statusOf(err)
	level := slog.LevelDebug
	if status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.Int("status", status),
		slog.String("error", err.Error()),
	}
	if cause := authz.Cause(err); cause != "" {
		attrs = append(attrs, slog.String("cause", cause))
	}
	g.log.LogAttrs(r.Context(), level, "request failed", attrs...)
	if limited, ok := errors.AsType[*rateLimitedError](err); ok {
		w.Header().Set("Retry-After", retryAfterSeconds(limited.wait))
	}
	writeProblem(w, r, status, detail)
}

const (
	jsonContentType    = "application/json"
	problemContentType = "application/problem+json"
)

// problemDocument is RFC 9457's format. The request ID extension lets a
// caller quote the log line that holds the cause.
type problemDocument struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// writeProblem is the only writer of problem documents.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="tenantgate"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeDocument(w, status, problemContentType, problemDocument{
		// about:blank: the status code says it all, and the title must
		// then be the status phrase (RFC 9457 section 4.2.1).
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		RequestID: telemetry.RequestID(r.Context()),
	})
}

// WriteProblem is writeProblem for handlers mounted beside the API (the
// web console), so that their errors read as the API's do.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	writeProblem(w, r, status, detail)
}

// WriteJSON is writeDocument of a JSON body, for handlers mounted beside
// the API.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	writeDocument(w, status, jsonContentType, v)
}

// encodingFailure is sent when a response cannot be encoded; only a
// programming error gets there, and a 500 beats half a document.
var encodingFailure = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)

// writeDocument is the only writer of response bodies. Bodies are encoded
// before anything is written, so a failure can still change the status.
func writeDocument(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, contentType, body = http.StatusInternalServerError, problemContentType, encodingFailure
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	// Authorization answers change as memberships change; no cache may
	// replay one.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// A failed write means the client is gone; there is no one to tell.
	_, _ = w.Write(append(body, '\n'))
}
