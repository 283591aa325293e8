package gateway

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	// platform counts allows that only a platform role gave, by role.
	platform *prometheus.CounterVec
	// rateLimited counts 429s by scope; shed counts requests refused at
	// the in-flight bound.
	rateLimited *prometheus.CounterVec
	shed        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_http_requests_total",
		Help: "HTTP requests answered, by route pattern and status code. A high rate of 5xx means tenantgate or a backend is failing; a high rate of 401 or 403 means callers send bad tokens or ask for what they may not.",
	}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tenantgate_http_request_duration_seconds",
		Help: "Time to answer an HTTP request, by route pattern. High values mean SpiceDB or Postgres is slow, or requests wait for a fresh consistency token.",
		// Checks take milliseconds; the top buckets catch backend timeouts.
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"route"})
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_check_decisions_total",
		Help: "Permission checks answered, by permission and decision (allowed, denied, error). A high share of denied can mean misconfigured clients or probing; a high rate of error means SpiceDB cannot answer and callers are being denied.",
	}, []string{"permission", "decision"})
	// Created up front so that every decision is exported from zero. The
	// gateway refuses a permission outside authz.Permissions before it
	// asks, so these are all the series there are.
	for _, p := range authz.Permissions {
		for _, d := range []string{decisionAllowed, decisionDenied, decisionError} {
			decisions.WithLabelValues(string(p), d)
		}
	}
	platform := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_platform_role_allows_total",
		Help: "Answers allowed only because the caller's token groups map to a platform role (--platform-role), by role: checks (single, bulk, permission matrices, AuthZEN) the memberships alone deny, and companies listed by a platform role's listing of every company. A high or rising rate means much access comes from identity-provider groups rather than memberships; review who is in those groups. Management decisions made through a platform role are in the audit trail.",
	}, []string{"role"})
	rateLimited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantgate_rate_limited_total",
		Help: "Requests answered 429 because a rate limit was reached, by scope (user, service, address). A high rate for one scope means a caller sends more than --rate-limit-* allows: an abusive or misconfigured client, or limits set below real traffic.",
	}, []string{"scope"})
	shed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tenantgate_http_shed_total",
		Help: "API requests refused with 503 because --max-in-flight requests were being served already. A rising value means the gateway is past its capacity: add replicas or find what makes requests slow.",
	})
	for _, c := range []prometheus.Collector{requests, duration, decisions, platform, rateLimited, shed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
	}
	return &metrics{
		requests:    requests,
		duration:    duration,
		decisions:   decisions,
		platform:    platform,
		rateLimited: rateLimited,
		shed:        shed,
	}, nil
}

// The values of the decision label.
const (
	decisionAllowed = "allowed"
	decisionDenied  = "denied"
	decisionError   = "error"
)

// recordDecisions counts the answers allowed gave to reqs.
func (m *metrics) recordDecisions(reqs []authz.CheckRequest, allowed []bool) {
	for i, req := range reqs {
		decision := decisionDenied
		if allowed[i] {
			decision = decisionAllowed
		}
		m.decisions.WithLabelValues(string(req.Permission), decision).Inc()
	}
}

// recordFailedChecks counts reqs as checks that could not be answered.
func (m *metrics) recordFailedChecks(reqs []authz.CheckRequest) {
	for _, req := range reqs {
		m.decisions.WithLabelValues(string(req.Permission), decisionError).Inc()
	}
}

// OpsHandler serves what operators and orchestrators ask of a gateway
// apart from its API: /metrics (which Handler leaves out when
// Config.MetricsApart is set), /healthz and /readyz, as Handler answers
// them.
func (g *Gateway) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.scrape)
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.HandleFunc("GET /readyz", g.handleReadyz)
	return mux
}
