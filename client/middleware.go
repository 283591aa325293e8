package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// decisionKey is the context key of the Decision Require hands on.
type decisionKey struct{}

// DecisionFrom returns the Decision that let the request through Require;
// ok is false when no Require did. With nested Requires it is the
// innermost's.
func DecisionFrom(ctx context.Context) (Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(Decision)
	return d, ok
}

// ContextWithDecision returns ctx carrying d, for tests of handlers that
// sit behind Require.
func ContextWithDecision(ctx context.Context, d Decision) context.Context {
	return context.WithValue(ctx, decisionKey{}, d)
}

// minRetryAfter is the Retry-After of a 503 when the gateway named none: a
// gateway that cannot be reached said nothing.
const minRetryAfter = time.Second

// Require is middleware that lets a request through only when the caller
// holds perm on the company that company reads from the request (a path
// value, a header, the host). The caller is the bearer of the request's
// Authorization header, whose token is passed to the gateway as it is.
//
// Require answers by itself, with a problem document (RFC 9457):
//   - 401 when the request has no well-formed bearer token, or the gateway
//     rejects it;
//   - 400 when company fails, or the gateway finds the company ID invalid;
//   - 403 when the gateway says no;
//   - 503 with Retry-After for any other failure, a timeout or an
//     unreachable gateway included: an unknown answer is never an allow.
//
// An allowed request goes on to next with its Decision in the context
// (DecisionFrom). Require panics when perm is not a permission of the API:
// that is a mistake of the program, which no request could correct.
func (c *Client) Require(perm Permission, company func(*http.Request) (string, error)) func(http.Handler) http.Handler {
	if !perm.Valid() {
		panic(fmt.Sprintf("tenantgate: Require: unknown permission %q", perm))
	}
	if company == nil {
		panic("tenantgate: Require: nil company function")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, ok := c.authorize(w, r, perm, company)
			if ok {
				next.ServeHTTP(w, r.WithContext(ContextWithDecision(r.Context(), d)))
			}
		})
	}
}

// authorize decides r; when it is not an allow it has answered w itself.
func (c *Client) authorize(w http.ResponseWriter, r *http.Request, perm Permission, company func(*http.Request) (string, error)) (Decision, bool) {
	token, err := BearerToken(r)
	if err != nil {
		writeProblem(w, http.StatusUnauthorized, err.Error(), "", 0)
		return Decision{}, false
	}
	id, err := company(r)
	if err == nil && id == "" {
		err = errors.New("no company in the request")
	}
	if err != nil {
		// The function is the application's, so its message is written
		// for the application's callers.
		writeProblem(w, http.StatusBadRequest, err.Error(), "", 0)
		return Decision{}, false
	}
	d, err := c.As(token).Check(r.Context(), Check{Permission: perm, Company: id})
	switch {
	case err != nil:
		c.refuse(w, r, err)
		return Decision{}, false
	case !d.Allowed:
		writeProblem(w, http.StatusForbidden, fmt.Sprintf("this needs %s on the company", perm), "", 0)
		return Decision{}, false
	}
	return d, true
}

// refuse answers a request whose check failed. Only the gateway's own
// verdicts about the request (its token, its company ID) are passed on;
// everything else is a 503, since the request may well be allowed once
// the gateway answers.
func (c *Client) refuse(w http.ResponseWriter, r *http.Request, err error) {
	e, isGateway := errors.AsType[*Error](err)
	switch {
	case isGateway && (e.Status == http.StatusUnauthorized || e.Status == http.StatusBadRequest || e.Status == http.StatusForbidden):
		c.log.LogAttrs(r.Context(), slog.LevelDebug, "tenantgate: request refused", slog.Int("status", e.Status), slog.String("error", err.Error()))
		writeProblem(w, e.Status, e.Detail, e.RequestID, 0)
	default:
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the caller went away; nothing failed
		}
		c.log.LogAttrs(r.Context(), level, "tenantgate: no decision; answered 503", slog.String("error", err.Error()))
		var requestID string
		wait := minRetryAfter
		if isGateway {
			requestID, wait = e.RequestID, max(wait, e.RetryAfter)
		}
		writeProblem(w, http.StatusServiceUnavailable, "", requestID, wait)
	}
}

// BearerToken reads the request's "Authorization: Bearer <token>" as the
// gateway does, so that a header the gateway would refuse is refused
// without asking it. Handlers behind Require use it to make further calls
// as the caller: c.As(token).
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", errors.New("missing bearer token")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if len(values) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || validToken(token) != nil {
		return "", errors.New(`Authorization must be "Bearer <token>"`)
	}
	return token, nil
}

// writeProblem answers with an RFC 9457 problem document. requestID, when
// set, is the gateway's, which names the log line with the cause.
func writeProblem(w http.ResponseWriter, status int, detail, requestID string, retry time.Duration) {
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer`)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	body, _ := json.Marshal(problemDocument{ // strings and an int cannot fail
		Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, RequestID: requestID,
	})
	h.Set("Content-Type", problemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	// An authorization answer changes as memberships change; no cache may
	// replay it.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client is gone
}
