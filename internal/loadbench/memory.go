package loadbench

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/index"
)

// indexFootprint is what building the permission index took.
type indexFootprint struct {
	relationships int
	heap          int64 // bytes the built index holds
	took          time.Duration
}

// measureIndex builds the permission index in this process from the
// relationships of a data set of memberships rows, shaped like the run's
// own (the same companies and users per membership), and measures the
// live heap it adds and the time it takes.
func measureIndex(shape Sizes, memberships int) (indexFootprint, error) {
	rels, err := scaledRelationships(shape, memberships)
	if err != nil {
		return indexFootprint{}, fmt.Errorf("index memory: %w", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	began := time.Now()
	graph, n, err := buildIndex(rels)
	took := time.Since(began)
	if err != nil {
		return indexFootprint{}, fmt.Errorf("index memory: build: %w", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Both stay live until after the second reading: the difference is
	// the index alone.
	runtime.KeepAlive(graph)
	runtime.KeepAlive(rels)
	return indexFootprint{relationships: n, heap: int64(after.HeapAlloc) - int64(before.HeapAlloc), took: took}, nil
}

// scaledRelationships generates a data set of memberships rows with the
// companies and users per membership of shape, and returns only its
// relationships: the rows are garbage by the time the heap is measured.
func scaledRelationships(shape Sizes, memberships int) ([]authz.Relationship, error) {
	scale := float64(memberships) / float64(max(shape.Memberships, 1))
	d, err := Generate(Sizes{
		Companies:   max(1, int(float64(shape.Companies)*scale)),
		Depth:       shape.Depth,
		Users:       max(bigOwners+1, int(float64(shape.Users)*scale)),
		Memberships: memberships,
		Seed:        shape.Seed,
	})
	if err != nil {
		return nil, err
	}
	return d.Relationships(), nil
}

// buildIndex is the one call into internal/index's build API, in one
// place while that package settles.
func buildIndex(rels []authz.Relationship) (*index.Graph, int, error) {
	g, err := index.Build(slices.Values(rels))
	if err != nil {
		return nil, 0, err
	}
	return g, g.Relationships(), nil
}
