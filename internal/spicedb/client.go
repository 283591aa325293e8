package spicedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// MaxUpdatesPerWrite is SpiceDB's default limit of updates in one
// WriteRelationships request.
const MaxUpdatesPerWrite = 1000

// DefaultCallTimeout bounds every SpiceDB call that arrives without a
// deadline of its own.
const DefaultCallTimeout = 10 * time.Second

// Client answers permission questions and applies relationship updates. It is
// safe for concurrent use.
type Client struct {
	perms       v1.PermissionsServiceClient
	schema      v1.SchemaServiceClient
	watch       v1.WatchServiceClient
	conn        io.Closer
	callTimeout time.Duration
	floor       func() string
	// revisions reads the revisions of the datastore behind SpiceDB, to
	// tell which of two ZedTokens is fresher.
	revisions revisionParser
	// importStreams is how many import calls Import runs at once, each
	// ending after importChunk relationships or importCallAge.
	importStreams int
	importChunk   int
	importCallAge time.Duration
	// calls times and counts every call on the connection; tracer and
	// propagator, when set, trace them (WithTracing).
	calls      callMetrics
	tracer     trace.TracerProvider
	propagator propagation.TextMapPropagator
}

// Option adjusts a Client.
type Option func(*Client)

// WithCallTimeout bounds every SpiceDB call that has no earlier deadline.
func WithCallTimeout(d time.Duration) Option {
	return func(c *Client) { c.callTimeout = d }
}

// WithFloor sets the floor: every read is at least as fresh as the token
// floor returns (the last write the sync applied), so a revocation the sync has
// applied is never answered from an older snapshot, whatever consistency
// token the caller passes.
func WithFloor(floor func() string) Option {
	return func(c *Client) { c.floor = floor }
}

// services are the SpiceDB APIs a Client uses.
type services interface {
	v1.PermissionsServiceClient
	v1.SchemaServiceClient
	v1.WatchServiceClient
}

// newClient configures a client; connect gives it the connection, which
// is dialled in between with the client's dialOptions.
func newClient(revisions revisionParser, opts ...Option) *Client {
	c := &Client{callTimeout: DefaultCallTimeout, revisions: revisions, calls: newCallMetrics(),
		importStreams: DefaultImportStreams, importChunk: importChunk, importCallAge: importCallAge}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *Client) connect(api services, conn io.Closer) {
	c.perms, c.schema, c.watch, c.conn = api, api, api, conn
}

// Close releases the connection.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("spicedb: close: %w", err)
	}
	return nil
}

func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.callTimeout)
}

// WriteSchema installs the authorization schema.
func (c *Client) WriteSchema(ctx context.Context, schema string) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if _, err := c.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: schema}); err != nil {
		return translateStartup("write schema", err)
	}
	return nil
}

// ReadSchema returns the schema SpiceDB holds, "" when it holds none.
func (c *Client) ReadSchema(ctx context.Context) (string, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.schema.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if status.Code(err) == codes.NotFound {
		return "", nil
	}
	if err != nil {
		return "", translateStartup("read schema", err)
	}
	return resp.GetSchemaText(), nil
}

// wanted is the token a read must be at least as fresh as: the caller's
// or the floor, whichever is fresher ("" for any).
func (c *Client) wanted(given authz.Consistency) (string, error) {
	floor := ""
	if c.floor != nil {
		floor = c.floor()
	}
	return c.revisions.freshest(given.AtLeastAsFresh, floor)
}

// Reflects reports whether an answer computed at revision have is as fresh
// as given and the floor demand. Revisions that cannot be ordered (two
// concurrent Postgres snapshots) do not reflect: only a revision known to
// include the wanted one does. A malformed caller's token is an
// authz.ErrInvalid.
func (c *Client) Reflects(have string, given authz.Consistency) (bool, error) {
	want, err := c.wanted(given)
	if err != nil || want == "" || want == have {
		return err == nil, err
	}
	return c.revisions.includes(have, want), nil
}

func (c *Client) consistency(given authz.Consistency) (*v1.Consistency, error) {
	if given.AtRevision != "" {
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: given.AtRevision}}}, nil
	}
	token, err := c.wanted(given)
	switch {
	case err != nil:
		return nil, err
	case token == "":
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}, nil
	}
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: token}}}, nil
}

func companyRef(id string) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: authz.TypeCompany, ObjectId: EncodeID(id)}
}

func userRef(id string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: authz.TypeUser, ObjectId: EncodeID(id)}}
}

// checkUser refuses the wildcard before it reaches SpiceDB, where it would
// mean "everybody".
func checkUser(user string) error {
	if err := authz.ValidateUserID(user); err != nil {
		return fmt.Errorf("spicedb: %w", err)
	}
	return nil
}

// Check reports whether req.User holds req.Permission on req.Company, and the
// revision the answer was computed at.
func (c *Client) Check(ctx context.Context, req authz.CheckRequest, cons authz.Consistency) (bool, string, error) {
	if err := checkUser(req.User); err != nil {
		return false, "", err
	}
	consistency, err := c.consistency(cons)
	if err != nil {
		return false, "", err
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: consistency,
		Resource:    companyRef(req.Company),
		Permission:  string(req.Permission),
		Subject:     userRef(req.User),
	})
	if err != nil {
		return false, "", translate("check", err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		resp.GetCheckedAt().GetToken(), nil
}

// CheckBulk answers many checks in one round trip. If SpiceDB cannot answer
// any one of them the whole call fails: a partial answer is not trusted.
func (c *Client) CheckBulk(ctx context.Context, reqs []authz.CheckRequest, cons authz.Consistency) ([]bool, string, error) {
	items := make([]*v1.CheckBulkPermissionsRequestItem, len(reqs))
	for i, r := range reqs {
		if err := checkUser(r.User); err != nil {
			return nil, "", err
		}
		items[i] = &v1.CheckBulkPermissionsRequestItem{
			Resource:   companyRef(r.Company),
			Permission: string(r.Permission),
			Subject:    userRef(r.User),
		}
	}
	consistency, err := c.consistency(cons)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.perms.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{
		Consistency: consistency,
		Items:       items,
	})
	if err != nil {
		return nil, "", translate("check bulk", err)
	}
	pairs := resp.GetPairs()
	if len(pairs) != len(reqs) {
		return nil, "", fmt.Errorf("spicedb: check bulk: %d answers for %d checks: %w", len(pairs), len(reqs), authz.ErrUnavailable)
	}
	allowed := make([]bool, len(pairs))
	for i, p := range pairs {
		if e := p.GetError(); e != nil {
			return nil, "", fmt.Errorf("spicedb: check bulk item %d: %s: %w", i, e.GetMessage(), authz.ErrUnavailable)
		}
		allowed[i] = p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	}
	return allowed, resp.GetCheckedAt().GetToken(), nil
}

// lookupPageSize is how many results one LookupResources call asks for,
// SpiceDB's maximum.
const lookupPageSize = 1000

// LookupCompanies lists, in ID order, up to limit companies on which user
// holds p whose IDs sort after cursor (an ID from a previous page, or empty).
// nextCursor is empty when nothing follows.
//
// SpiceDB's own cursors can return a company reachable through several paths
// on more than one page, so every page walks the whole result and keeps the
// limit smallest IDs: pages are sorted, stable and free of duplicates, at a
// cost linear in how many companies the user can reach, with memory bounded
// by limit.
func (c *Client) LookupCompanies(ctx context.Context, user string, p authz.Permission, cons authz.Consistency, limit int, cursor string) ([]string, string, error) {
	if err := checkUser(user); err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > lookupPageSize {
		return nil, "", fmt.Errorf("spicedb: lookup: %w: limit %d outside 1..%d", authz.ErrInvalid, limit, lookupPageSize)
	}
	consistency, err := c.consistency(cons)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	page := make([]string, 0, limit+1)
	var after *v1.Cursor
	for {
		n, last, err := c.lookupChunk(ctx, user, p, consistency, after, func(id string) {
			page = keepSmallest(page, id, cursor, limit+1)
		})
		if err != nil {
			return nil, "", err
		}
		if n < lookupPageSize {
			break
		}
		after = last
	}
	if len(page) > limit {
		return page[:limit], page[limit-1], nil
	}
	return page, "", nil
}

// LookupUsers returns, sorted, every user who holds p on company, whether
// through a role on the company or on an ancestor. A wildcard subject (which
// the sync never writes) is an error rather than "everybody".
func (c *Client) LookupUsers(ctx context.Context, company string, p authz.Permission, cons authz.Consistency) ([]string, error) {
	consistency, err := c.consistency(cons)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	stream, err := c.perms.LookupSubjects(ctx, &v1.LookupSubjectsRequest{
		Consistency:       consistency,
		Resource:          companyRef(company),
		Permission:        string(p),
		SubjectObjectType: authz.TypeUser,
	})
	if err != nil {
		return nil, translate("lookup users", err)
	}
	var users []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, translate("lookup users", err)
		}
		if resp.GetSubject().GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			continue // conditional answers are no answer: fail closed
		}
		raw := resp.GetSubject().GetSubjectObjectId()
		if raw == authz.WildcardUser {
			return nil, fmt.Errorf("spicedb: lookup users: %w: wildcard subject on %q", authz.ErrUnavailable, company)
		}
		id, err := decodeID(raw)
		if err != nil {
			return nil, fmt.Errorf("spicedb: lookup users: %w", err)
		}
		users = append(users, id)
	}
	slices.Sort(users)
	return slices.Compact(users), nil
}

// lookupChunk streams one LookupResources call to found and reports how many
// results it had and the cursor after the last.
func (c *Client) lookupChunk(ctx context.Context, user string, p authz.Permission, cons *v1.Consistency, after *v1.Cursor, found func(id string)) (int, *v1.Cursor, error) {
	stream, err := c.perms.LookupResources(ctx, &v1.LookupResourcesRequest{
		Consistency:        cons,
		ResourceObjectType: authz.TypeCompany,
		Permission:         string(p),
		Subject:            userRef(user),
		OptionalLimit:      lookupPageSize,
		OptionalCursor:     after,
	})
	if err != nil {
		return 0, nil, translate("lookup", err)
	}
	n := 0
	var last *v1.Cursor
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, last, nil
		}
		if err != nil {
			return 0, nil, translate("lookup", err)
		}
		n++
		last = resp.GetAfterResultCursor()
		if resp.GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			continue
		}
		id, err := decodeID(resp.GetResourceObjectId())
		if err != nil {
			return 0, nil, fmt.Errorf("spicedb: lookup: %w: %w", err, authz.ErrUnavailable)
		}
		found(id)
	}
}

// keepSmallest inserts id into the sorted, duplicate-free page when it sorts
// after cursor and among the capacity smallest seen.
func keepSmallest(page []string, id, cursor string, capacity int) []string {
	if id <= cursor {
		return page
	}
	i, found := slices.BinarySearch(page, id)
	switch {
	case found:
		return page
	case len(page) < capacity:
		return slices.Insert(page, i, id)
	case i < len(page):
		page = slices.Insert(page[:len(page)-1], i, id)
	}
	return page
}

// maxDeletesPerWrite bounds the deletes in one WriteRelationships request.
// SpiceDB's Postgres datastore deletes a request's relationships with one
// UPDATE over an OR of one clause per relationship, and past a few hundred
// clauses PostgreSQL plans a sequential scan of the whole relationship table:
// at 300k relationships a request of 500 deletes and 500 touches took 3.5 s,
// the same updates in requests of 100 deletes 23 ms each (docs/benchmarks.md).
const maxDeletesPerWrite = 100

// Write applies updates in requests of at most MaxUpdatesPerWrite updates and
// maxDeletesPerWrite deletes, one after another, and returns the revision of
// the last one, which covers them all. Updates to the same relationship
// collapse to the last one (SpiceDB refuses duplicates within a request).
// Each request is atomic; a call larger than one request is not.
func (c *Client) Write(ctx context.Context, updates []authz.Update) (string, error) {
	var token string
	for batch := range writeRequests(collapse(updates)) {
		t, err := c.writeBatch(ctx, batch)
		if err != nil {
			return "", err
		}
		token = t
	}
	return token, nil
}

// writeRequests cuts updates into requests within SpiceDB's limit and
// maxDeletesPerWrite.
func writeRequests(updates []authz.Update) iter.Seq[[]authz.Update] {
	return func(yield func([]authz.Update) bool) {
		start, deletes := 0, 0
		for i, u := range updates {
			if u.Op == authz.OpDelete {
				deletes++
			}
			if i+1-start == MaxUpdatesPerWrite || deletes == maxDeletesPerWrite || i == len(updates)-1 {
				if !yield(updates[start : i+1]) {
					return
				}
				start, deletes = i+1, 0
			}
		}
	}
}

func (c *Client) writeBatch(ctx context.Context, batch []authz.Update) (string, error) {
	req := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(batch))}
	for i, u := range batch {
		op := v1.RelationshipUpdate_OPERATION_TOUCH
		if u.Op == authz.OpDelete {
			op = v1.RelationshipUpdate_OPERATION_DELETE
		}
		req.Updates[i] = &v1.RelationshipUpdate{Operation: op, Relationship: toV1(u.Rel)}
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.perms.WriteRelationships(ctx, req)
	if err != nil {
		return "", translate("write relationships", err)
	}
	return resp.GetWrittenAt().GetToken(), nil
}

func toV1(r authz.Relationship) *v1.Relationship {
	return &v1.Relationship{
		Resource: companyRef(r.Resource),
		Relation: r.Relation,
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.SubjectType, ObjectId: EncodeID(r.SubjectID)}},
	}
}

// collapse keeps the last update of each relationship, in the order the
// survivors were last touched.
func collapse(updates []authz.Update) []authz.Update {
	last := make(map[authz.Relationship]int, len(updates))
	for i, u := range updates {
		last[u.Rel] = i
	}
	if len(last) == len(updates) {
		return updates
	}
	out := make([]authz.Update, 0, len(last))
	for i, u := range updates {
		if last[u.Rel] == i {
			out = append(out, u)
		}
	}
	return out
}

// DeleteRelations removes every company relationship with one of the given
// relations (a TRUNCATE of the table they come from), in pages so no single
// request exceeds SpiceDB's delete limit.
func (c *Client) DeleteRelations(ctx context.Context, relations []string) (string, error) {
	var token string
	for _, rel := range relations {
		for {
			t, done, err := c.deletePage(ctx, rel)
			if err != nil {
				return "", err
			}
			token = t
			if done {
				break
			}
		}
	}
	return token, nil
}

func (c *Client) deletePage(ctx context.Context, relation string) (token string, done bool, err error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.perms.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{
		RelationshipFilter:            &v1.RelationshipFilter{ResourceType: authz.TypeCompany, OptionalRelation: relation},
		OptionalLimit:                 MaxUpdatesPerWrite,
		OptionalAllowPartialDeletions: true,
	})
	if err != nil {
		return "", false, translate("delete relationships", err)
	}
	return resp.GetDeletedAt().GetToken(),
		resp.GetDeletionProgress() == v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE, nil
}

// ReadRelationships streams every company relationship SpiceDB holds to fn,
// fully consistent, so the caller can compare it with the source of truth.
// As with Export, the call as a whole is bounded by ctx only, since its
// length grows with the data; each message is bounded by the call timeout.
func (c *Client) ReadRelationships(ctx context.Context, fn func(authz.Relationship) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: authz.TypeCompany},
	})
	if err != nil {
		return translate("read relationships", err)
	}
	for {
		// The sync's callers (its start, the reconcile) have no deadline:
		// a message that takes longer than a call would is a stuck stream,
		// which would hold the sync up for good.
		stuck := time.AfterFunc(c.callTimeout, cancel)
		resp, err := stream.Recv()
		stuck.Stop()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return translate("read relationships", err)
		}
		rel, err := fromV1(resp.GetRelationship())
		if err != nil {
			return err
		}
		if err := fn(rel); err != nil {
			return err
		}
	}
}

func fromV1(r *v1.Relationship) (authz.Relationship, error) {
	resource, err := decodeID(r.GetResource().GetObjectId())
	if err != nil {
		return authz.Relationship{}, fmt.Errorf("spicedb: %w", err)
	}
	subject, err := decodeID(r.GetSubject().GetObject().GetObjectId())
	if err != nil {
		return authz.Relationship{}, fmt.Errorf("spicedb: %w", err)
	}
	return authz.Relationship{
		Resource:    resource,
		Relation:    r.GetRelation(),
		SubjectType: r.GetSubject().GetObject().GetObjectType(),
		SubjectID:   subject,
	}, nil
}

// importChunk is how many relationships one ImportBulkRelationships call
// carries at most, and importCallAge how long one call may stay open.
