// Package client is the Go client of tenantgate's REST API (v1), for
// applications that ask the gateway who may do what on which company.
//
// A Client knows the gateway's URL and, optionally, the service token of a
// trusted backend. Every call is made with a bearer: the user's own token
// (c.As(userToken)) or the service token, with which the check calls name
// the user they ask about (Check.Subject). The caller's token is never
// parsed here: only the gateway verifies it.
//
// Failures are never an allow. A call that did not get a well-formed answer
// returns an error and a zero result, whose Allowed is false; an answer the
// gateway refused with a problem document (RFC 9457) is an *Error, which
// errors.Is matches against ErrForbidden, ErrUnauthorized and the other
// sentinels.
//
// Writes of the management API answer with a consistency token; a read
// given that token (ConsistencyToken in its request) reflects the write.
//
// WithRetries makes the reads retry a 503 or 429 after its Retry-After,
// within a budget shared by the clients derived from one New, so that
// retries add at most a tenth to the load of a gateway that refuses;
// writes and other answers are never retried (RetryPolicy).
//
// Require is a net/http middleware that answers 400, 401, 403 and 503
// itself and hands the allowed requests on with their Decision in the
// context (DecisionFrom).
//
// The package needs nothing but the standard library.
package client
