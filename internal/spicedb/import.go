package spicedb

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// SpiceDB answers an import only at its end and cancels a stream that sent
// nothing for 30 s (--streaming-api-response-delay-timeout), so one call for
// a whole large table, or one fed by a slow reader, would be cancelled at
// every try.
const (
	importChunk   = 100_000
	importCallAge = 10 * time.Second
)

// DefaultImportStreams is how many ImportBulkRelationships calls Import keeps
// open at once. One call keeps about one PostgreSQL core busy on SpiceDB's
// side; two were 1.3-1.7x faster than one (docs/benchmarks.md).
const DefaultImportStreams = 2

// WithImportStreams sets how many import calls run at once.
func WithImportStreams(n int) Option {
	return func(c *Client) { c.importStreams = max(n, 1) }
}

// Import loads relationships through ImportBulkRelationships, SpiceDB's
// fastest write path: rels is read on the caller's goroutine in requests of
// MaxUpdatesPerWrite, which up to DefaultImportStreams (WithImportStreams)
// concurrent calls send, each call ending after importChunk relationships or
// importCallAge. Memory is a
// few requests per call, whatever the size of rels. Each call is atomic and
// fails on a relationship that exists already, so Import is only for
// filling an empty SpiceDB; Write is the idempotent path. It returns how
// many were loaded; on an error some calls may have committed.
func (c *Client) Import(ctx context.Context, rels iter.Seq[authz.Relationship]) (uint64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []*v1.Relationship, c.importStreams)
	var (
		loaded  atomic.Uint64
		workers sync.WaitGroup
	)
	for range c.importStreams {
		workers.Go(func() {
			for {
				n, more, err := c.importCall(ctx, batches)
				loaded.Add(n)
				if err != nil {
					cancel(err)
					return
				}
				if !more {
					return
				}
			}
		})
	}
	c.feedImport(ctx, rels, batches)
	close(batches)
	workers.Wait()
	if err := context.Cause(ctx); err != nil {
		return loaded.Load(), err
	}
	return loaded.Load(), nil
}

// feedImport cuts rels into requests until rels ends or ctx is cancelled.
func (c *Client) feedImport(ctx context.Context, rels iter.Seq[authz.Relationship], batches chan<- []*v1.Relationship) {
	batch := make([]*v1.Relationship, 0, MaxUpdatesPerWrite)
	send := func() bool {
		select {
		case batches <- batch:
			batch = make([]*v1.Relationship, 0, MaxUpdatesPerWrite)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for rel := range rels {
		batch = append(batch, toV1(rel))
		if len(batch) == MaxUpdatesPerWrite && !send() {
			return
		}
	}
	if len(batch) > 0 {
		send()
	}
}

// importCall sends requests from batches on one ImportBulkRelationships
// call until it carries importChunk relationships or is importCallAge old;
// more is false once batches is closed and drained. A call is opened only
// when its first request is at hand.
func (c *Client) importCall(ctx context.Context, batches <-chan []*v1.Relationship) (n uint64, more bool, err error) {
	var first []*v1.Relationship
	select {
	case <-ctx.Done():
		return 0, false, context.Cause(ctx)
	case b, ok := <-batches:
		if !ok {
			return 0, false, nil
		}
		first = b
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.perms.ImportBulkRelationships(ctx)
	if err != nil {
		return 0, false, translate("import", err)
	}
	age := time.NewTimer(c.importCallAge)
	defer age.Stop()
	more = true
	for batch, sent := first, 0; ; {
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: batch}); err != nil {
			// Send reports only that the stream broke; the server's reason
			// comes with CloseAndRecv.
			if _, rerr := stream.CloseAndRecv(); rerr != nil {
				err = rerr
			}
			return 0, false, translate("import", err)
		}
		if sent += len(batch); sent >= c.importChunk {
			break
		}
		var ok bool
		select {
		case <-ctx.Done():
			return 0, false, context.Cause(ctx)
		case <-age.C:
		case batch, ok = <-batches:
			if ok {
				continue
			}
			more = false
		}
		break
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, false, translate("import", err)
	}
	return resp.GetNumLoaded(), more, nil
}

// headProbe is a relationship nobody holds; checking it fully consistent
// costs one datastore read and returns the current revision.
var headProbe = authz.CheckRequest{User: "tenantgate-head-probe", Permission: authz.PermRead, Company: "tenantgate-head-probe"}

// HeadToken returns a ZedToken at SpiceDB's current revision: reads at least
// as fresh as it see every write made before the call, including bulk
// imports, which return no token of their own.
func (c *Client) HeadToken(ctx context.Context) (string, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    companyRef(headProbe.Company),
		Permission:  string(headProbe.Permission),
		Subject:     userRef(headProbe.User),
	})
	if err != nil {
		return "", translate("head token", err)
	}
	return resp.GetCheckedAt().GetToken(), nil
}
