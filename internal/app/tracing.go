package app

import (
	"context"
	"log/slog"

	"github.com/tenantgate/tenantgate/internal/telemetry"
)

// serviceName names tenantgate's processes in traces unless
// OTEL_SERVICE_NAME says otherwise.
const serviceName = "tenantgate"

func (c Config) tracingConfig() telemetry.Config {
	return telemetry.Config{Endpoint: c.OTLPEndpoint, ServiceName: serviceName}
}

// startTracing starts the tracer provider the configuration asks for (a
// provider that traces nothing when no OTLP endpoint is configured). stop
// exports the spans still queued, within the shutdown timeout, after
// everything that makes spans has stopped.
func startTracing(ctx context.Context, cfg Config, logger *slog.Logger) (tracing *telemetry.Tracing, stop func(), err error) {
	tracing, err = telemetry.Start(ctx, cfg.tracingConfig())
	if err != nil {
		return nil, nil, err
	}
	if tracing.TracerProvider() != nil {
		logger.InfoContext(ctx, "sending traces over OTLP/HTTP")
	}
	return tracing, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		if err := tracing.Shutdown(ctx); err != nil {
			logger.WarnContext(ctx, "spans not exported at shutdown", "error", err)
		}
	}, nil
}
