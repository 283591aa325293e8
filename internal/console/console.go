package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/gateway"
)

//go:embed static
var static embed.FS

// prefix is the path the console is served under.
const prefix = "/console/"

// DemoUser is a sample user the demo signs in with one click.
type DemoUser struct{ ID, Label string }

// OIDC is the identity provider the console signs users in with: the
// authorization code flow with PKCE, as a public client.
type OIDC struct{ ClientID, AuthorizationEndpoint, TokenEndpoint, Scope string }

// Config is what the console offers besides pasting a token.
type Config struct {
	// DemoUsers are the sign-in buttons; demo only.
	DemoUsers []DemoUser
	// DemoSignIn mints a token for one of DemoUsers; nil: no demo sign-in.
	DemoSignIn func(ctx context.Context, user string) (string, error)
	// OIDC, when set, offers sign-in at the identity provider.
	OIDC *OIDC
}

// maxTokenRequest bounds the body of a demo sign-in, which holds one ID.
const maxTokenRequest = 4 << 10

// staticFiles are the files served, by path, with their media types.
var staticFiles = map[string]struct{ file, contentType string }{
	prefix:               {"index.html", "text/html; charset=utf-8"},
	prefix + "app.js":    {"app.js", "text/javascript; charset=utf-8"},
	prefix + "style.css": {"style.css", "text/css; charset=utf-8"},
}

// handler serves every path under /console/ from a fixed table: anything
// else is 404, so nothing the embedded tree might hold is served by chance.
type handler struct {
	routes  map[string]route
	headers http.Header
	log     *slog.Logger
}

type route struct {
	method string
	serve  http.HandlerFunc
}

// Handler checks cfg and returns the handler of every /console path; it
// expects the full request path.
func Handler(cfg Config, logger *slog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	h := &handler{routes: map[string]route{}, headers: securityHeaders(cfg.OIDC), log: logger}
	for path, f := range staticFiles {
		body, err := static.ReadFile("static/" + f.file)
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		h.routes[path] = route{http.MethodGet, serveStatic(body, f.contentType)}
	}
	h.routes["/console"] = route{http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, prefix, http.StatusMovedPermanently)
	}}
	configJSON, err := json.Marshal(clientConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	h.routes[prefix+"config.json"] = route{http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		gateway.WriteJSON(w, http.StatusOK, json.RawMessage(configJSON))
	}}
	if cfg.DemoSignIn != nil {
		h.routes[prefix+"demo/token"] = route{http.MethodPost, h.demoToken(cfg)}
	}
	return h, nil
}

func (c Config) validate() error {
	var errs []error
	if len(c.DemoUsers) > 0 && c.DemoSignIn == nil {
		errs = append(errs, errors.New("demo users need a demo sign-in"))
	}
	for _, u := range c.DemoUsers {
		if u.ID == "" || u.Label == "" {
			errs = append(errs, fmt.Errorf("demo user %q: an ID and a label are required", u.ID))
		}
	}
	if o := c.OIDC; o != nil {
		if o.ClientID == "" {
			errs = append(errs, errors.New("oidc: a client ID is required"))
		}
		for _, e := range []struct{ name, url string }{
			{"authorization endpoint", o.AuthorizationEndpoint}, {"token endpoint", o.TokenEndpoint},
		} {
			if _, err := endpointOrigin(e.url); err != nil {
				errs = append(errs, fmt.Errorf("oidc: %s %q: %w", e.name, e.url, err))
			}
		}
	}
	return errors.Join(errs...)
}

// endpointOrigin is the origin of an identity provider's endpoint, which
// must be an absolute http or https URL.
func endpointOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("want an absolute http or https URL")
	}
	return u.Scheme + "://" + u.Host, nil
}

// securityHeaders go on every console response. The token endpoint's
// origin is the one other place the page may connect to: the browser
// exchanges the authorization code there itself.
func securityHeaders(oidc *OIDC) http.Header {
	connect := "'self'"
	if oidc != nil {
		origin, _ := endpointOrigin(oidc.TokenEndpoint) // validated
		connect += " " + origin
	}
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + connect +
		"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return http.Header{
		"Content-Security-Policy": {csp},
		"X-Content-Type-Options":  {"nosniff"},
		"Referrer-Policy":         {"no-referrer"},
	}
}

type clientDemoUser struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

type clientOIDC struct {
	ClientID              string `json:"client_id"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	Scope                 string `json:"scope"`
}

type clientConfigDocument struct {
	DemoUsers []clientDemoUser `json:"demo_users,omitempty"`
	OIDC      *clientOIDC      `json:"oidc"`
}

// clientConfig is what config.json tells the page: which sign-ins to offer.
func clientConfig(cfg Config) clientConfigDocument {
	var doc clientConfigDocument
	if cfg.DemoSignIn != nil {
		for _, u := range cfg.DemoUsers {
			doc.DemoUsers = append(doc.DemoUsers, clientDemoUser(u))
		}
	}
	if o := cfg.OIDC; o != nil {
		scope := o.Scope
		if scope == "" {
			scope = "openid"
		}
		doc.OIDC = &clientOIDC{ClientID: o.ClientID, AuthorizationEndpoint: o.AuthorizationEndpoint,
			TokenEndpoint: o.TokenEndpoint, Scope: scope}
	}
	return doc
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range h.headers {
		w.Header()[k] = v
	}
	rt, ok := h.routes[r.URL.Path]
	switch {
	case !ok:
		gateway.WriteProblem(w, r, http.StatusNotFound, "")
	case r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead):
		allow := rt.method
		if rt.method == http.MethodGet {
			allow += ", " + http.MethodHead
		}
		w.Header().Set("Allow", allow)
		gateway.WriteProblem(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here")
	default:
		rt.serve(w, r)
	}
}

// serveStatic serves an embedded file. Browsers revalidate it on each
// load (no-cache with an ETag), so an upgraded gateway never pairs a new
// page with an old script.
func serveStatic(body []byte, contentType string) http.HandlerFunc {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}
}

// demoToken mints a token for a sample user. It grants nothing a printed
// demo token does not: the demo's tokens are public by design.
func (h *handler) demoToken(cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, status, detail := decodeTokenRequest(w, r)
		if status != 0 {
			gateway.WriteProblem(w, r, status, detail)
			return
		}
		if !slices.ContainsFunc(cfg.DemoUsers, func(u DemoUser) bool { return u.ID == user }) {
			gateway.WriteProblem(w, r, http.StatusForbidden, "only the demo's sample users can sign in here")
			return
		}
		token, err := cfg.DemoSignIn(r.Context(), user)
		if err != nil {
			h.log.ErrorContext(r.Context(), "console: demo sign-in", "user", user, "error", err)
			gateway.WriteProblem(w, r, http.StatusInternalServerError, "")
			return
		}
		gateway.WriteJSON(w, http.StatusOK, struct {
			Token string `json:"token"`
		}{token})
	}
}

// decodeTokenRequest reads {"user": "<id>"} strictly: JSON only, no other
// field, nothing after it, at most maxTokenRequest bytes. A non-zero status
// is the refusal.
func decodeTokenRequest(w http.ResponseWriter, r *http.Request) (user string, status int, detail string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", http.StatusUnsupportedMediaType, "the body must be application/json"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenRequest))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return "", http.StatusRequestEntityTooLarge, fmt.Sprintf("the body must be at most %d bytes", maxTokenRequest)
		}
		return "", http.StatusBadRequest, "the body could not be read"
	}
	var req struct {
		User *string `json:"user"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", http.StatusBadRequest, "the body must be {\"user\": \"<id>\"}"
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return "", http.StatusBadRequest, "the body must hold one JSON object"
	}
	if req.User == nil || strings.TrimSpace(*req.User) == "" {
		return "", http.StatusBadRequest, "user is required"
	}
	return *req.User, 0, ""
}
