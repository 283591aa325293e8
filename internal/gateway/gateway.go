// Package gateway is tenantgate's REST edge. It authenticates the caller,
// validates every input, asks the Authorizer and answers in JSON, with
// errors as RFC 9457 problem documents. It fails closed: an answer it does
// not know is never "allowed".
package gateway

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/telemetry"
)

// Authenticator turns a bearer token into the caller's user ID and groups;
// errors wrap authz.ErrUnauthenticated (or authz.ErrUnavailable).
type Authenticator interface {
	Authenticate(ctx context.Context, rawToken string) (authz.Principal, error)
}

// Authorizer answers permission questions; SpiceDB implements it. Any error
// means "unknown" and must be a deny.
type Authorizer interface {
	Check(ctx context.Context, req authz.CheckRequest, c authz.Consistency) (allowed bool, token string, err error)
	CheckBulk(ctx context.Context, reqs []authz.CheckRequest, c authz.Consistency) (allowed []bool, token string, err error)
	LookupCompanies(ctx context.Context, user string, p authz.Permission, c authz.Consistency, limit int, cursor string) (ids []string, nextCursor string, err error)
}

// CompanyReader joins names to IDs from Postgres. CompaniesByIDs returns
// companies in the order of ids and omits unknown ids.
type CompanyReader interface {
	CompaniesByIDs(ctx context.Context, ids []string) ([]authz.Company, error)
}

// AllCompanies pages through every company, for callers whose platform
// role grants a listing's permission on all of them. It returns at most
// limit companies whose IDs sort after after ("" starts), in that order.
type AllCompanies interface {
	CompaniesAfter(ctx context.Context, after string, limit int) ([]authz.Company, error)
}

// Explainer reads what an explanation is made of at the exact revision of
// token, the one the answer being explained came from; SpiceDB implements
// it.
type Explainer interface {
	ExplainFacts(ctx context.Context, user, company, token string) (authz.ExplainFacts, error)
}

// AppliedWaiter serves waits: it turns a Postgres WAL position into a
// ZedToken, returning once the sync has applied every transaction that
// ended at or before pos.LSN, with a token a read must be at least as fresh
// as to reflect them. It waits until ctx ends at most; any error means "not
// known to be applied", and the read fails with 503, except for
// ErrPositionAhead and an *EarlierTimelineError (400), which it answers
// before waiting for a position of another timeline than the database's
// (pos.Timeline 0 is none: a bare LSN is taken on any).
type AppliedWaiter interface {
	AwaitApplied(ctx context.Context, pos authz.Position) (zedToken string, err error)
}

// Deps are the collaborators of a Gateway; Authn, Authz and Companies are
// required.
type Deps struct {
	Authn     Authenticator
	Authz     Authorizer
	Companies CompanyReader
	// All lists every company for platform roles; required when
	// Config.PlatformRoles maps any group.
	All AllCompanies
	// Explainer serves explanations; without it asking for one is 501.
	Explainer Explainer
	// Routes, when set, serves /v1/forward-auth for reverse proxies.
	Routes ForwardRoutes
	// Waits serves reads whose consistency token is a WAL position (the
	// token of a write). nil means there is no sync to wait for: such reads
	// answer 503, since nothing could tell whether the write is reflected.
	Waits AppliedWaiter
	// Manager and Users serve the management routes, which exist only
	// when Manager is set; Users is then required too.
	Manager Manager
	Users   UserLookup
	// Console serves the web console under /console/; nil means none.
	// Its pages are public, and its data comes from the API with the
	// signed-in user's token, so no authentication stands in front of it.
	Console http.Handler
	// Ready reports whether the backends can answer (for /readyz); nil
	// means always ready.
	Ready func() bool
	// Stale reports that the permission index lags Postgres beyond the
	// operator's bound: reads then answer 503 and /readyz fails rather than
	// answer from a mirror that may still allow what Postgres revoked. nil
	// means never stale.
	Stale func() bool
	// Logger receives request logs and the internal causes of errors,
	// which responses never carry; nil discards them.
	Logger *slog.Logger
	// Registry receives the gateway's metrics and is what /metrics serves;
	// nil means a fresh registry.
	Registry *prometheus.Registry
	// TracerProvider, when set, makes a span of every API request,
	// continuing the caller's trace as Propagator reads it; nil traces
	// nothing.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// Gateway serves the HTTP contract of docs/design.md.
type Gateway struct {
	cfg     Config
	authn   Authenticator
	svc     *service
	manager Manager
	users   UserLookup
	forward ForwardRoutes
	console http.Handler
	ready   func() bool
	stale   func() bool
	log     *slog.Logger
	metrics *metrics
	limits  *limits
	// serviceToken is the service token now; "" when none is configured.
	serviceToken func() string
	handler      http.Handler
	// scrape serves /metrics, on Handler or on OpsHandler.
	scrape http.Handler

	// waits turns LSN consistency tokens into ZedTokens (nil: none can
	// be honoured).
	waits AppliedWaiter
}

// New checks cfg and deps and builds the routes.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	if deps.Authn == nil || deps.Authz == nil || deps.Companies == nil {
		return nil, errors.New("gateway: Authn, Authz and Companies are required")
	}
	if deps.Manager != nil && deps.Users == nil {
		return nil, errors.New("gateway: Users is required with Manager")
	}
	if len(cfg.PlatformRoles) > 0 && deps.All == nil {
		return nil, errors.New("gateway: All is required with platform roles")
	}
	g := &Gateway{
		cfg:     cfg,
		authn:   deps.Authn,
		ready:   deps.Ready,
		stale:   deps.Stale,
		log:     deps.Logger,
		manager: deps.Manager,
		users:   deps.Users,
		forward: deps.Routes,
		console: deps.Console,
	}
	g.waits = deps.Waits
	if g.ready == nil {
		g.ready = func() bool { return true }
	}
	if g.stale == nil {
		g.stale = func() bool { return false }
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = telemetry.Logger(g.log)
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	g.metrics = m
	g.limits = newLimits(cfg)
	for _, scope := range []string{"user", "service", "address"} {
		m.rateLimited.WithLabelValues(scope) // exported from zero
	}
	g.svc = &service{authz: deps.Authz, companies: deps.Companies, all: deps.All, explainer: deps.Explainer, users: deps.Users, metrics: m}
	g.serviceToken = cfg.CurrentServiceToken
	if g.serviceToken == nil {
		token := cfg.ServiceToken
		g.serviceToken = func() string { return token }
	}
	g.scrape = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelError),
	})
	g.handler = traced(g.routes(), deps.TracerProvider, deps.Propagator)
	return g, nil
}

// Handler serves every route, with request IDs, logging, metrics and panic
// recovery.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Server returns an http.Server for addr serving every route (NewServer).
func (g *Gateway) Server(addr string) *http.Server {
	return NewServer(g.cfg, addr, g.handler, g.log)
}

//go:embed openapi.yaml
var openAPIDocument []byte

// route is one pattern of the mux and what serves it.
type route struct {
	pattern string
	handler http.Handler
}

// routeTable is every route the gateway serves.
func (g *Gateway) routeTable() []route {
	rs := []route{
		{"POST /v1/check", g.api(usersAndService, g.handleCheck)},
		{"POST /v1/check/bulk", g.api(usersAndService, g.handleCheckBulk)},
		{"GET /v1/companies", g.api(usersOnly, g.handleListCompanies)},
		{"GET /v1/companies/{id}/permissions", g.api(usersOnly, g.handlePermissions)},
		{"GET /healthz", http.HandlerFunc(handleHealthz)},
		{"GET /readyz", http.HandlerFunc(g.handleReadyz)},
		{"GET /openapi.yaml", http.HandlerFunc(handleOpenAPI)},
		{"POST " + authzenEvaluationPath, g.api(usersAndService, g.handleEvaluation)},
		{"POST " + authzenEvaluationsPath, g.api(usersAndService, g.handleEvaluations)},
		{"POST " + authzenSearchResourcePath, g.api(usersAndService, g.handleSearchResource)},
		{"POST " + authzenSearchActionPath, g.api(usersAndService, g.handleSearchAction)},
		{"GET " + authzenConfigurationPath, http.HandlerFunc(g.handleAuthZENConfiguration)},
	}
	if !g.cfg.MetricsApart {
		rs = append(rs, route{"GET /metrics", g.scrape})
	}
	if g.svc.users != nil {
		rs = append(rs, route{"POST " + authzenSearchSubjectPath, g.api(usersAndService, g.handleSearchSubject)})
	}
	if g.forward != nil {
		// Every method: nginx and Caddy ask with GET, Envoy with the
		// original method and path.
		h := g.api(anyone, g.handleForwardAuth)
		rs = append(rs, route{forwardAuthPath, h}, route{forwardAuthPath + "/{path...}", h})
	}
	if g.console != nil {
		// Every method: the console answers those it does not serve
		// itself.
		rs = append(rs, route{"/console/", g.console}, route{"GET /console", g.console})
	}
	if g.manager != nil {
		rs = append(rs,
			route{"POST /v1/companies", g.api(usersOnly, g.handleCreateCompany)},
			route{"PATCH /v1/companies/{id}", g.api(usersOnly, g.handlePatchCompany)},
			route{"GET /v1/companies/{id}/members", g.api(usersOnly, g.handleListMembers)},
			route{"PUT /v1/companies/{id}/members/{user}", g.api(usersOnly, g.handlePutMember)},
			route{"DELETE /v1/companies/{id}/members/{user}", g.api(usersOnly, g.handleDeleteMember)},
			route{"POST /v1/companies/{id}/members/{user}/accept", g.api(usersOnly, g.handleAcceptMember)},
			route{"POST /v1/companies/{id}/members/{user}/decline", g.api(usersOnly, g.handleDeclineMember)},
			route{"GET /v1/companies/{id}/audit", g.api(usersOnly, g.handleAudit)},
		)
	}
	return rs
}

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	for _, r := range g.routeTable() {
		mux.Handle(r.pattern, r.handler)
	}
	return g.observe(g.problemForUnrouted(mux))
}
