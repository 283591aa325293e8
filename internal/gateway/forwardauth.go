package gateway

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/routes"
)

// ForwardRoutes maps a request a reverse proxy asks about to the
// permission it needs and its company; routes.Table implements it.
type ForwardRoutes interface {
	Match(method, uri string, h http.Header) (routes.Match, error)
}

// forwardAuthPath answers reverse proxies' authorization sub-requests.
// Envoy's ext_authz appends the original path to it.
const forwardAuthPath = "/v1/forward-auth"

// The headers the answer gives the upstream, through the proxy.
const (
	forwardUserHeader       = "X-Tenantgate-User"
	forwardCompanyHeader    = "X-Tenantgate-Company"
	forwardPermissionHeader = "X-Tenantgate-Permission"
)

type forwardAuthResponse struct {
	Allowed    bool             `json:"allowed"`
	User       string           `json:"user,omitempty"`
	Company    string           `json:"company,omitempty"`
	Permission authz.Permission `json:"permission,omitempty"`
}

// originalRequest is the method and request target the proxy asks about:
// from nginx's conventional X-Original-* headers, from the X-Forwarded-*
// ones Caddy and Traefik send, or, for Envoy, from the sub-request itself
// (its method, and its path after forwardAuthPath). The proxy must set
// these headers itself, overwriting any a client sent; a client that sets
// them on a request straight to the gateway only asks another question
// about its own token.
func originalRequest(r *http.Request) (method, uri string, err error) {
	for _, names := range [][2]string{{"X-Original-Method", "X-Original-Uri"}, {"X-Forwarded-Method", "X-Forwarded-Uri"}} {
		m, u := r.Header.Values(names[0]), r.Header.Values(names[1])
		if len(m) == 0 && len(u) == 0 {
			continue
		}
		if len(m) != 1 || len(u) != 1 || m[0] == "" || u[0] == "" {
			return "", "", fmt.Errorf("%w: give exactly one %s and one %s", authz.ErrInvalid, names[0], names[1])
		}
		return m[0], u[0], nil
	}
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), forwardAuthPath); ok && strings.HasPrefix(rest, "/") {
		if r.URL.RawQuery != "" {
			rest += "?" + r.URL.RawQuery
		}
		return r.Method, rest, nil
	}
	return "", "", fmt.Errorf("%w: no original request: the proxy must send X-Original-Method and X-Original-URI (or X-Forwarded-Method and X-Forwarded-Uri)", authz.ErrInvalid)
}

// handleForwardAuth answers 200 when the caller may make the original
// request, with who it is and the company for the upstream; 401 or 403
// otherwise, and 400 for a request the route file cannot read. It
// authenticates only once a rule matched, since `unmatched: allow` lets
// requests through without a token.
func (g *Gateway) handleForwardAuth(w http.ResponseWriter, r *http.Request, _ caller) (any, error) {
	method, uri, err := originalRequest(r)
	if err != nil {
		return nil, err
	}
	m, err := g.forward.Match(method, uri, r.Header)
	if err != nil {
		return nil, err
	}
	if !m.Matched {
		if m.Allowed {
			return forwardAuthResponse{Allowed: true}, nil
		}
		return nil, fmt.Errorf("%w: no route rule covers %s %s", authz.ErrForbidden, method, strings.SplitN(uri, "?", 2)[0])
	}
	c, err := g.authenticate(r.Context(), r.Header)
	if err != nil {
		return nil, err
	}
	if c.service {
		return nil, fmt.Errorf("%w: forward auth decides for users; the service token names none", authz.ErrForbidden)
	}
	if err := g.limitCaller(c); err != nil {
		return nil, err
	}
	// The original request's own Consistency-Token, which the proxy
	// passes along with its other headers, reads the caller's writes.
	cons, err := g.consistency(r.Context(), r.Header, "")
	if err != nil {
		return nil, err
	}
	req := authz.CheckRequest{User: c.user, Permission: m.Permission, Company: m.Company}
	allowed, _, err := g.svc.check(r.Context(), req, cons, c.platform)
	if err != nil {
		return nil, err
	}
	if !allowed {
		return nil, fmt.Errorf("%w: %s on company %q is not granted", authz.ErrForbidden, m.Permission, m.Company)
	}
	h := w.Header()
	h.Set(forwardUserHeader, c.user)
	h.Set(forwardCompanyHeader, m.Company)
	h.Set(forwardPermissionHeader, string(m.Permission))
	return forwardAuthResponse{Allowed: true, User: c.user, Company: m.Company, Permission: m.Permission}, nil
}
