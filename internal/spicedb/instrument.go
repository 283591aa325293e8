package spicedb

import (
	"context"
	"errors"
	"io"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// WithTracing makes a span with tp of every SpiceDB call made inside a
// trace, a child of the span in the caller's context, and sends its trace
// context to SpiceDB with p, so that a SpiceDB that traces continues the
// same trace. A nil tp traces nothing.
func WithTracing(tp trace.TracerProvider, p propagation.TextMapPropagator) Option {
	return func(c *Client) { c.tracer, c.propagator = tp, p }
}

var _ prometheus.Collector = (*Client)(nil)

// Describe implements prometheus.Collector: the client's call metrics.
func (c *Client) Describe(ch chan<- *prometheus.Desc) {
	c.calls.duration.Describe(ch)
	c.calls.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	c.calls.duration.Collect(ch)
	c.calls.errors.Collect(ch)
}

// dialOptions instrument the connection: every call is timed and its
// failures counted, embedded or remote alike, and traced when WithTracing
// gave a provider.
func (c *Client) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(c.calls.unary),
		grpc.WithChainStreamInterceptor(c.calls.stream),
	}
	if c.tracer != nil {
		opts = append(opts, grpc.WithStatsHandler(withinTrace{otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(c.tracer), otelgrpc.WithPropagators(c.propagator))}))
	}
	return opts
}

// withinTrace traces only the calls made inside a trace (a request's).
// The calls made in the background (the readiness probe every second, the
// index's Watch, the sync's writes) would otherwise each start a trace of
// their own, burying the requests'.
type withinTrace struct{ stats.Handler }

type tracedCallKey struct{}

func (h withinTrace) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return context.WithValue(h.Handler.TagRPC(ctx, info), tracedCallKey{}, true)
}

func (h withinTrace) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if ctx.Value(tracedCallKey{}) != nil {
		h.Handler.HandleRPC(ctx, s)
	}
}

// callMetrics are the latency and failures of SpiceDB calls, by method
// (the gRPC method's name: CheckPermission, LookupResources, ...; a fixed
// set, the calls this package makes).
type callMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newCallMetrics() callMetrics {
	return callMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tenantgate_spicedb_request_duration_seconds",
			Help: "Time a SpiceDB call took, by gRPC method, a stream's until its last message; Watch, a subscription, is not timed. High values mean SpiceDB or its datastore is slow, or the network to it: every check and list waits for it.",
			// Checks take milliseconds; the top buckets catch timeouts and
			// the bulk import and export of the sync.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_spicedb_errors_total",
			Help: "SpiceDB calls that failed, by gRPC method and status code (calls the caller itself cancelled are not counted). A rising rate of Unavailable or DeadlineExceeded means SpiceDB is down, overloaded or unreachable, and checks fail closed; FailedPrecondition or InvalidArgument means a schema or request mismatch.",
		}, []string{"method", "code"}),
	}
}

// subscriptions are the streams that stay open for as long as the caller
// wants: their duration is no latency.
var subscriptions = map[string]bool{"/authzed.api.v1.WatchService/Watch": true}

func (m callMetrics) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.observe(ctx, method, start, err)
	return err
}

func (m callMetrics) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		m.observe(ctx, method, start, err)
		return nil, err
	}
	return &observedStream{ClientStream: s, oneAnswer: !desc.ServerStreams,
		end: func(err error) { m.observe(ctx, method, start, err) }}, nil
}

// observe records one finished call. A call whose context the caller
// cancelled (a client that went away, a stream it stopped reading) says
// nothing about SpiceDB and is left out.
func (m callMetrics) observe(ctx context.Context, method string, start time.Time, err error) {
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	name := path.Base(method)
	if err != nil {
		m.errors.WithLabelValues(name, status.Code(err).String()).Inc()
	}
	if !subscriptions[method] {
		m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
}

// observedStream reports the end of a stream, which is where its reader
// learns it: io.EOF or an error from RecvMsg, or for a client stream (one
// answer to many requests) that answer.
type observedStream struct {
	grpc.ClientStream
	oneAnswer bool
	end       func(error)
	ended     bool // RecvMsg is never called concurrently with itself
}

func (s *observedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if !s.ended && (err != nil || s.oneAnswer) {
		s.ended = true
		if errors.Is(err, io.EOF) {
			s.end(nil)
		} else {
			s.end(err)
		}
	}
	return err
}
