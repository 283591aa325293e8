package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// caller is who sent a /v1 request: a verified user, or the trusted service
// asking on a user's behalf.
type caller struct {
	user    string // verified subject; empty for the service
	service bool
	// platform is the role the user's token groups give it on every
	// company (--platform-role); zero for none and for the service, whose
	// subjects come without tokens.
	platform authz.PlatformGrant
}

// audience says whether the service token may call a route. Only the check
// routes take a subject; everything else is about the caller itself.
type audience int

const (
	usersOnly audience = iota + 1
	usersAndService
	// anyone: the handler authenticates, when it needs to, itself.
	anyone
)

// authenticate identifies the caller from the bearer token.
func (g *Gateway) authenticate(ctx context.Context, h http.Header) (caller, error) {
	token, err := bearerToken(h)
	if err != nil {
		return caller{}, err
	}
	// The service token is recognised before the Authenticator sees it, so
	// the secret never travels to JWKS-verification code or its logs.
	if g.isServiceToken(token) {
		return caller{service: true}, nil
	}
	p, err := g.authn.Authenticate(ctx, token)
	if err != nil {
		return caller{}, fmt.Errorf("authenticate: %w", err)
	}
	// An empty or wildcard subject would turn every check into a question
	// about nobody or everybody.
	if err := authz.ValidateUserID(p.Subject); err != nil {
		return caller{}, fmt.Errorf("%w: token subject is not a usable user id", authz.ErrUnauthenticated)
	}
	return caller{user: p.Subject, platform: g.cfg.PlatformRoles.For(p.Groups)}, nil
}

// platformFor is the platform role that counts in a question about user:
// the caller's own, and only about itself. The service names subjects
// without their tokens, so their groups, and roles, are unknown.
func (c caller) platformFor(user string) authz.PlatformGrant {
	if c.service || user != c.user {
		return authz.PlatformGrant{}
	}
	return c.platform
}

// actor is the caller as a management request's actor.
func (c caller) actor() authz.Actor {
	return authz.Actor{ID: c.user, Platform: c.platform}
}

func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return "", fmt.Errorf("%w: missing bearer token", authz.ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if len(values) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf("%w: Authorization must be \"Bearer <token>\"", authz.ErrUnauthenticated)
	}
	return token, nil
}

// isServiceToken compares digests, so the time taken reveals neither the
// secret's content nor its length.
func (g *Gateway) isServiceToken(token string) bool {
	want := g.serviceToken()
	if want == "" {
		return false
	}
	h, w := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(h[:], w[:]) == 1
}

// subject is the user a check is about, from the raw "subject" of the body
// (nil: absent). A user asks only about itself; a "subject" from a user is
// refused rather than ignored, even empty or null, so a client that
// believes it is asking about someone else learns that it is not.
func (c caller) subject(requested json.RawMessage) (string, error) {
	if !c.service {
		if requested != nil {
			return "", fmt.Errorf("%w: subject may only be set by a trusted service", authz.ErrForbidden)
		}
		return c.user, nil
	}
	if requested == nil {
		return "", fmt.Errorf("%w: subject is required with the service token", authz.ErrInvalid)
	}
	var user string
	if bytes.Equal(requested, []byte("null")) || json.Unmarshal(requested, &user) != nil {
		return "", fmt.Errorf("%w: subject must be a string", authz.ErrInvalid)
	}
	if err := authz.ValidateUserID(user); err != nil {
		return "", fmt.Errorf("subject: %w", err)
	}
	return user, nil
}
