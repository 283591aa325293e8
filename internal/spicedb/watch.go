package spicedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// exportPageSize is how many relationships one ExportBulkRelationships
// response carries at most.
const exportPageSize = 10_000

// watchMaxMessage bounds one Watch response, which carries a whole
// revision: a bulk import of 100,000 relationships is one, far above
// gRPC's default 4 MiB.
const watchMaxMessage = 1 << 30

// Export streams every company relationship to fn as SpiceDB holds them at
// one revision, and returns that revision: Watch from it misses nothing and
// repeats nothing. The call as a whole is bounded by ctx only, since its
// length grows with the data; each page is bounded by the call timeout.
func (c *Client) Export(ctx context.Context, fn func(authz.Relationship) error) (string, error) {
	token, err := c.headToken(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.perms.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{
		Consistency:                &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: token}}},
		OptionalLimit:              exportPageSize,
		OptionalRelationshipFilter: &v1.RelationshipFilter{ResourceType: authz.TypeCompany},
	})
	if err != nil {
		return "", translate("export", err)
	}
	for {
		// A page that takes longer than a call would is a stuck stream.
		stuck := time.AfterFunc(c.callTimeout, cancel)
		resp, err := stream.Recv()
		stuck.Stop()
		if errors.Is(err, io.EOF) {
			return token, nil
		}
		if err != nil {
			return "", translate("export", err)
		}
		for _, r := range resp.GetRelationships() {
			rel, err := fromV1Plain(r)
			if err != nil {
				return "", fmt.Errorf("spicedb: export: %w", err)
			}
			if err := fn(rel); err != nil {
				return "", err
			}
		}
	}
}

// headToken is a token of SpiceDB's current revision.
func (c *Client) headToken(ctx context.Context) (string, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	resp, err := c.schema.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return "", translate("read revision", err)
	}
	return resp.GetReadAt().GetToken(), nil
}

// Watch streams to fn, in revision order, the company relationship updates
// SpiceDB makes after revision after (empty: from now), each revision's updates at once with
// the token of that revision (none for a checkpoint that only moves the
// revision on). It returns when ctx ends, fn fails, or the stream breaks.
// A subscription has no deadline: it lasts as long as ctx.
func (c *Client) Watch(ctx context.Context, after string, fn func(updates []authz.Update, through string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// No cursor watches from SpiceDB's current revision.
	var cursor *v1.ZedToken
	if after != "" {
		cursor = &v1.ZedToken{Token: after}
	}
	stream, err := c.watch.Watch(ctx, &v1.WatchRequest{
		OptionalObjectTypes: []string{authz.TypeCompany},
		OptionalStartCursor: cursor,
		OptionalUpdateKinds: []v1.WatchKind{v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS},
	}, grpc.MaxCallRecvMsgSize(watchMaxMessage))
	if err != nil {
		return translate("watch", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return translate("watch", err)
		}
		updates := make([]authz.Update, len(resp.GetUpdates()))
		for i, u := range resp.GetUpdates() {
			if updates[i], err = fromV1Update(u); err != nil {
				return fmt.Errorf("spicedb: watch: %w", err)
			}
		}
		if err := fn(updates, resp.GetChangesThrough().GetToken()); err != nil {
			return err
		}
	}
}

func fromV1Update(u *v1.RelationshipUpdate) (authz.Update, error) {
	rel, err := fromV1Plain(u.GetRelationship())
	if err != nil {
		return authz.Update{}, err
	}
	switch u.GetOperation() {
	case v1.RelationshipUpdate_OPERATION_TOUCH, v1.RelationshipUpdate_OPERATION_CREATE:
		return authz.Update{Op: authz.OpTouch, Rel: rel}, nil
	case v1.RelationshipUpdate_OPERATION_DELETE:
		return authz.Update{Op: authz.OpDelete, Rel: rel}, nil
	}
	return authz.Update{}, fmt.Errorf("update of unknown operation %v", u.GetOperation())
}

// fromV1Plain converts a relationship that holds nothing but its three
// parts. The sync writes no caveats, expirations or subject relations; one
// that has them would grant less than the plain relationship, so it is
// refused rather than read as more.
func fromV1Plain(r *v1.Relationship) (authz.Relationship, error) {
	if r.GetOptionalCaveat() != nil || r.GetOptionalExpiresAt() != nil || r.GetSubject().GetOptionalRelation() != "" {
		return authz.Relationship{}, fmt.Errorf("relationship %s:%s#%s with a caveat, expiry or subject relation: %w",
			r.GetResource().GetObjectType(), r.GetResource().GetObjectId(), r.GetRelation(), authz.ErrUnavailable)
	}
	return fromV1(r)
}
