// Package telemetry is tenantgate's door to OpenTelemetry: the tracer
// provider that exports spans over OTLP/HTTP when an endpoint is
// configured, the propagator that carries the trace context on to SpiceDB,
// and the log handler that puts the request ID, and the trace ID of a
// recording span, on every line logged with a request's context.
//
// The instrumentation itself lives with what it instruments: the gateway
// wraps its handler, the spicedb package its gRPC connection, the store
// its pgx pool; each takes the provider from here, and nil means untraced.
package telemetry
