package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	allowed  prometheus.Counter
	denied   prometheus.Counter
	failed   prometheus.Counter
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
		Help: "Permission checks answered, by decision. A high share of denied can mean misconfigured clients or probing; a high rate of error means SpiceDB cannot answer and callers are being denied.",
	}, []string{"decision"})
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
		requests: requests,
		duration: duration,
		// Created up front so that every decision is exported from zero.
		allowed:     decisions.WithLabelValues("allowed"),
		denied:      decisions.WithLabelValues("denied"),
		failed:      decisions.WithLabelValues("error"),
		platform:    platform,
		rateLimited: rateLimited,
		shed:        shed,
	}, nil
}

func (m *metrics) recordDecisions(allowed []bool) {
	for _, a := range allowed {
		if a {
			m.allowed.Inc()
		} else {
			m.denied.Inc()
		}
	}
}

func (m *metrics) recordFailedChecks(n int) { m.failed.Add(float64(n)) }
