package spicedb_test

import (
	"context"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/schema"
)

// TestReadSchemaKeepsStamp pins what schema versioning relies on: SpiceDB
// answers "no schema" as an empty text, and returns the version comment
// of a written schema, which it might otherwise drop as a plain comment.
func TestReadSchemaKeepsStamp(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	e, err := spicedb.StartEmbedded(ctx, spicedb.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })

	text, err := e.ReadSchema(ctx)
	if err != nil || text != "" {
		t.Fatalf("ReadSchema before any write = %q, %v; want \"\", nil", text, err)
	}
	if err := e.WriteSchema(ctx, schema.Schema); err != nil {
		t.Fatal(err)
	}
	text, err = e.ReadSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := schema.ParseStamp(text)
	if err != nil || !ok || got != schema.Current {
		t.Fatalf("stamp of the schema SpiceDB returns = %+v, %v, %v; want %+v\n%s", got, ok, err, schema.Current, text)
	}
}
