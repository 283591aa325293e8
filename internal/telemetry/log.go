package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying a request's ID: every line logged
// with it through Logger carries it as request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the request ID ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Logger returns l with every line logged with a context (LogAttrs,
// InfoContext, ...) carrying that context's request_id, and trace_id and
// span_id while a span is recording, so that any part a request passes
// through (gateway, store, SpiceDB client) logs lines that can be found by
// the ID the caller got back, or by the trace. It wraps l once: a logger
// it returned comes back unchanged.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(contextHandler); ok {
		return l
	}
	return slog.New(contextHandler{next: l.Handler()})
}

// contextHandler adds what a record's context says about its request.
type contextHandler struct{ next slog.Handler }

func (h contextHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	id := RequestID(ctx)
	span := trace.SpanFromContext(ctx)
	recording := span.IsRecording()
	if id == "" && !recording {
		return h.next.Handle(ctx, r)
	}
	// The record may be shared with other handlers; attributes go to a
	// copy of it.
	r = r.Clone()
	if id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if recording {
		sc := span.SpanContext()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{next: h.next.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{next: h.next.WithGroup(name)}
}
