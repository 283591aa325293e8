package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/telemetry"
)

const requestIDHeader = "X-Request-Id"

// requestID keeps a caller's ID when it is one run of visible ASCII (a
// UUID, a trace ID, base64) of bounded length, since AuthZEN requires the
// caller's X-Request-ID back unchanged; it can be echoed and logged without
// breaking a header or a log line. Anything else gets an ID made up.
func requestID(given string) string {
	if len(given) == 0 || len(given) > maxRequestIDBytes {
		return rand.Text()
	}
	for i := range len(given) {
		if c := given[i]; c <= ' ' || c > '~' {
			return rand.Text()
		}
	}
	return given
}

// maxRequestIDBytes bounds an echoed request ID.
const maxRequestIDBytes = 200

// statusRecorder remembers the status a handler sent.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// traced makes a span of every request but probes and scrapes with tp,
// continuing the caller's trace as p reads it (nil: OpenTelemetry's global
// propagator); observe names it after the route. A nil tp traces nothing
// and costs nothing.
func traced(next http.Handler, tp trace.TracerProvider, p propagation.TextMapPropagator) http.Handler {
	if tp == nil {
		return next
	}
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithFilter(func(r *http.Request) bool { return !operational[r.URL.Path] }),
		// The route is known only once the mux has matched it.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	}
	if p != nil {
		opts = append(opts, otelhttp.WithPropagators(p))
	}
	return otelhttp.NewHandler(next, "http request", opts...)
}

// operational are the paths probes and Prometheus ask every few seconds: a
// trace each would bury the requests worth looking at.
var operational = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// nameSpan names the request's span after its route, as OpenTelemetry's
// HTTP conventions do: "POST /v1/check"; the method alone when no route
// matched.
func nameSpan(r *http.Request) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	if r.Pattern == "" {
		span.SetName(r.Method)
		return
	}
	route := r.Pattern
	if _, path, hasMethod := strings.Cut(r.Pattern, " "); hasMethod {
		route = path
	}
	span.SetName(r.Method + " " + route)
	span.SetAttributes(attribute.String("http.route", route))
}

// observe gives every request an ID, recovers panics, and logs and counts
// the outcome. Headers are never logged: they carry bearer tokens. The
// request ID reaches every line logged with the request's context (the
// logger is telemetry.Logger's).
func (g *Gateway) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r.Header.Get(requestIDHeader))
		w.Header().Set(requestIDHeader, id)
		r = r.WithContext(telemetry.WithRequestID(r.Context(), id))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				g.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.Any("panic", v),
					slog.String("stack", string(debug.Stack())))
				// Handlers encode a whole body before writing, so a panic
				// after the first write cannot cut an answer short; before
				// it, nothing was answered and a 500 is the truth.
				if rec.status == 0 {
					writeProblem(rec, r, http.StatusInternalServerError, "")
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			// The mux sets the pattern on r; unrouted requests share one
			// label so that scanners cannot blow up the series count.
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			g.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
			g.metrics.duration.WithLabelValues(route).Observe(elapsed.Seconds())
			nameSpan(r)
			g.log.LogAttrs(r.Context(), accessLogLevel(status), "http request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", elapsed))
		}()
		next.ServeHTTP(rec, r)
	})
}

// headerProbe is a ResponseWriter that keeps only the status and headers.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }

// problemForUnrouted answers requests that match no route with problem
// documents instead of the mux's plain-text 404 and 405.
func (g *Gateway) problemForUnrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Only the mux's own fallback knows which methods the path allows;
		// run it against a probe to learn its verdict and Allow header.
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			g.problem(w, r, fmt.Errorf("%w: %s is not allowed here", errMethodNotAllowed, r.Method))
			return
		}
		g.problem(w, r, fmt.Errorf("%w: no route for %s", authz.ErrNotFound, r.URL.Path))
	})
}

// apiHandler serves a /v1 route for an authenticated caller: a returned
// value becomes a 200 JSON body, a returned error a problem document.
type apiHandler func(w http.ResponseWriter, r *http.Request, c caller) (any, error)

// api authenticates the caller, enforces who may call the route and bounds
// the backend calls of the request by the configured timeout.
func (g *Gateway) api(who audience, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		resp, err := g.serveAPI(w, r, who, h)
		switch rp, ok := resp.(reply); {
		case err != nil:
			g.problem(w, r, err)
		case ok && rp.body == nil:
			w.WriteHeader(rp.status)
		case ok:
			writeDocument(w, rp.status, jsonContentType, rp.body)
		default:
			writeDocument(w, http.StatusOK, jsonContentType, resp)
		}
	})
}

func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request, who audience, h apiHandler) (any, error) {
	release, err := g.limits.admit()
	if err != nil {
		g.metrics.shed.Inc()
		return nil, err
	}
	defer release()
	if err := g.limits.beforeAuth(r); err != nil {
		g.metrics.rateLimited.WithLabelValues("address").Inc()
		return nil, err
	}
	if who == anyone {
		return h(w, r, caller{})
	}
	c, err := g.authenticate(r.Context(), r.Header)
	if err != nil {
		return nil, err
	}
	if err := g.limitCaller(c); err != nil {
		return nil, err
	}
	if c.service && who != usersAndService {
		return nil, fmt.Errorf("%w: the service token may only call the check routes: /v1/check, /v1/check/bulk and /access/v1/*", authz.ErrForbidden)
	}
	return h(w, r, c)
}

// limitCaller applies the authenticated caller's own rate limit.
func (g *Gateway) limitCaller(c caller) error {
	err := g.limits.afterAuth(c)
	if err != nil {
		scope := "user"
		if c.service {
			scope = "service"
		}
		g.metrics.rateLimited.WithLabelValues(scope).Inc()
	}
	return err
}

// accessLogLevel keeps a line per answered request out of the info log: at
// thousands of checks a second it would cost more than the checks, and
// tenantgate_http_requests_total counts them. Refusals are info, failures
// warnings.
func accessLogLevel(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelWarn
	case status >= 400:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
