// Package spicedbtest starts the real SpiceDB, embedded, for tests. It is a
// package of its own so that only the tests that need SpiceDB link it.
package spicedbtest

import (
	"context"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/schema"
)

// NewEmbedded starts SpiceDB in-process on the memory datastore with
// tenantgate's schema written; it is stopped when tb ends.
func NewEmbedded(tb testing.TB, opts ...spicedb.Option) *spicedb.Embedded {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := spicedb.StartEmbedded(ctx, spicedb.EmbeddedConfig{}, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Stop(context.Background()) })
	if err := e.WriteSchema(ctx, schema.Schema); err != nil {
		tb.Fatal(err)
	}
	return e
}
