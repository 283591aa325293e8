package spicedb

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/schema"
)

// StartTestServer starts an embedded SpiceDB with the schema, stopped when
// the test ends. It is exported for this package's external tests.
func StartTestServer(t *testing.T) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{})
	if err != nil {
		t.Fatalf("start embedded spicedb: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	if err := e.WriteSchema(ctx, schema.Schema); err != nil {
		t.Fatalf("write schema: %v", err)
	}
	return e
}

func viewers(n int) iter.Seq[authz.Relationship] {
	return func(yield func(authz.Relationship) bool) {
		for i := range n {
			if !yield(authz.Relationship{Resource: fmt.Sprintf("c%d", i%97), Relation: "viewer", SubjectType: authz.TypeUser, SubjectID: fmt.Sprintf("u%d", i)}) {
				return
			}
		}
	}
}

// TestImportSplitsCallsAcrossStreams imports more than several calls' worth
// over concurrent streams with small limits and reads back exactly what was
// sent.
func TestImportSplitsCallsAcrossStreams(t *testing.T) {
	for _, tc := range []struct {
		name    string
		streams int
		chunk   int
		age     time.Duration
		rels    int
	}{
		{"one stream", 1, 2_500, time.Minute, 10_500},
		{"three streams", 3, 2_500, time.Minute, 10_500},
		{"calls cut by age", 2, 1_000_000, time.Nanosecond, 5_300},
		{"nothing", 2, 2_500, time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := StartTestServer(t)
			e.importStreams, e.importChunk, e.importCallAge = tc.streams, tc.chunk, tc.age
			n, err := e.Import(t.Context(), viewers(tc.rels))
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if n != uint64(tc.rels) {
				t.Errorf("import loaded %d, want %d", n, tc.rels)
			}
			want := map[authz.Relationship]bool{}
			for rel := range viewers(tc.rels) {
				want[rel] = true
			}
			got := 0
			err = e.ReadRelationships(t.Context(), func(rel authz.Relationship) error {
				if !want[rel] {
					return fmt.Errorf("unexpected relationship %+v", rel)
				}
				got++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.rels {
				t.Errorf("read back %d relationships, want %d", got, tc.rels)
			}
		})
	}
}

// TestImportFailureStopsReading: a call SpiceDB refuses (a relationship
// that exists already) fails the import, and the reader is not left
// blocked or read to its end.
func TestImportFailureStopsReading(t *testing.T) {
	e := StartTestServer(t)
	e.importStreams, e.importChunk = 2, 1_000
	if _, err := e.Import(t.Context(), viewers(10)); err != nil {
		t.Fatalf("first import: %v", err)
	}
	const offered = 1_000_000
	read := 0
	counted := func(yield func(authz.Relationship) bool) {
		for rel := range viewers(offered) {
			read++
			if !yield(rel) {
				return
			}
		}
	}
	_, err := e.Import(t.Context(), counted)
	if !errors.Is(err, authz.ErrConflict) {
		t.Fatalf("import of existing relationships: err = %v, want a conflict", err)
	}
	if read == offered {
		t.Errorf("the reader was read to its end (%d) after the import failed", read)
	}
}
