package index

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Index is a Graph shared by concurrent readers, with the SpiceDB revision
// (a ZedToken) it reflects. Writers replace the graph at a load and amend it
// one Watch revision at a time, so a reader sees whole revisions only.
type Index struct {
	mu    sync.RWMutex
	graph *Graph
	// token is the revision graph reflects; "" until the first load.
	token string
	// advanced is closed, and replaced, whenever token changes, to wake
	// the reads waiting for a fresher revision.
	advanced chan struct{}
	// following is false while the Watch that feeds the index is down: a
	// read the index is not fresh enough for then goes to SpiceDB at once
	// instead of waiting for changes that are not coming.
	following bool
	// loadTime is how long the current graph took to load.
	loadTime time.Duration
}

// New returns an empty Index that answers nothing until its first Load.
func New() *Index {
	return &Index{advanced: make(chan struct{})}
}

// Load replaces the graph with one SpiceDB exported at token.
func (ix *Index) Load(g *Graph, token string, took time.Duration) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.graph = g
	ix.loadTime = took
	ix.following = true
	ix.advance(token)
}

// Unload drops the graph: reads go to SpiceDB at once until the next Load.
func (ix *Index) Unload() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.graph = nil
	ix.advance("")
}

// Stalled records that the Watch broke; the next Apply undoes it.
func (ix *Index) Stalled() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.following = false
}

// Apply makes the updates of one revision, in order, and records token as
// the revision the index now reflects. An update the index cannot hold
// leaves the index unloaded: it must not answer without it.
func (ix *Index) Apply(updates []authz.Update, token string) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.graph == nil {
		return errNotLoaded
	}
	if token == "" {
		return errors.New("index: update without a revision")
	}
	for _, u := range updates {
		if err := ix.graph.Apply(u); err != nil {
			ix.graph = nil
			ix.advance("")
			return err
		}
	}
	ix.following = true
	ix.advance(token)
	return nil
}

// advance must be called with mu held for writing.
func (ix *Index) advance(token string) {
	if token == ix.token {
		return
	}
	ix.token = token
	close(ix.advanced)
	ix.advanced = make(chan struct{})
}

// Token is the revision the index reflects, "" when it is not loaded.
func (ix *Index) Token() string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.token
}

// Stats describes the index for metrics.
type Stats struct {
	Relationships int
	LoadTime      time.Duration
}

// Stats reads the index's size; zero while it is not loaded.
func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.graph == nil {
		return Stats{}
	}
	return Stats{Relationships: ix.graph.relationships, LoadTime: ix.loadTime}
}

// Bytes estimates the index's memory. It walks every array: call it at
// scrape time, not per request.
func (ix *Index) Bytes() int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.graph == nil {
		return 0
	}
	return ix.graph.Bytes()
}

// read runs fn on the graph once the index reflects a revision that
// fresh accepts, waiting for it at most wait, and only while the Watch
// runs. ok is false when the index did not get there, is not loaded, or its
// Watch is down: the caller must ask SpiceDB. fresh's error (a malformed
// consistency token) ends the wait at once. A read the index is fresh
// enough for, nearly all of them, sets no timer.
func (ix *Index) read(ctx context.Context, wait time.Duration, fresh func(token string) (bool, error), fn func(*Graph) error) (token string, ok bool, err error) {
	var expired <-chan time.Time
	for {
		ix.mu.RLock()
		token, advanced, following := ix.token, ix.advanced, ix.following
		if ix.graph == nil {
			ix.mu.RUnlock()
			return "", false, nil
		}
		good, err := fresh(token)
		if err != nil {
			ix.mu.RUnlock()
			return "", false, err
		}
		if good {
			err := fn(ix.graph)
			ix.mu.RUnlock()
			return token, true, err
		}
		ix.mu.RUnlock()
		if !following {
			return token, false, nil
		}
		if expired == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-advanced:
		case <-expired:
			return token, false, nil
		case <-ctx.Done():
			return token, false, nil
		}
	}
}
