package spicedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// maxChain bounds the companies ExplainFacts walks up through: SpiceDB's
// dispatch depth (50 by default). It equals index.MaxDepth, counted the same
// way (a chain of maxChain companies is the longest read), but is declared
// here: the index package sits above this one (it checks its answers against
// a Client) and this package must not depend on it.
const maxChain = 50

// ExplainFacts reads the chain of company up to its root and the roles user
// holds directly on each company of it, all at the revision of token (a
// ZedToken the caller got with the answer being explained).
//
// Every read is at SpiceDB's exact snapshot of token, so the facts are the
// ones the answer was computed from, whatever was written since. A company
// with several parents, a cycle, a chain longer than maxChain, or a
// relationship the sync never writes (a caveat, an expiry, a subject
// relation, an unknown relation) is an error, never a partial explanation.
// A company SpiceDB holds nothing about is its own chain, with no roles.
func (c *Client) ExplainFacts(ctx context.Context, user, company, token string) (authz.ExplainFacts, error) {
	if err := checkUser(user); err != nil {
		return authz.ExplainFacts{}, err
	}
	if err := authz.ValidateCompanyID(company); err != nil {
		return authz.ExplainFacts{}, fmt.Errorf("spicedb: explain facts: %w", err)
	}
	if token == "" {
		return authz.ExplainFacts{}, fmt.Errorf("spicedb: explain facts: %w: no revision token", authz.ErrInvalid)
	}
	consistency, err := c.consistency(authz.Consistency{AtRevision: token})
	if err != nil {
		return authz.ExplainFacts{}, err
	}
	facts := authz.ExplainFacts{Roles: map[string][]authz.Role{}}
	seen := map[string]bool{}
	for next, more := company, true; more; {
		if len(facts.Chain) == maxChain {
			return authz.ExplainFacts{}, fmt.Errorf("spicedb: explain facts: the chain of %q is longer than %d companies", company, maxChain)
		}
		if seen[next] {
			return authz.ExplainFacts{}, fmt.Errorf("spicedb: explain facts: the chain of %q loops at %q", company, next)
		}
		seen[next] = true
		facts.Chain = append(facts.Chain, next)
		roles, err := c.directRoles(ctx, consistency, user, next)
		if err != nil {
			return authz.ExplainFacts{}, err
		}
		if len(roles) > 0 {
			facts.Roles[next] = roles
		}
		if next, more, err = c.parentOf(ctx, consistency, next); err != nil {
			return authz.ExplainFacts{}, err
		}
	}
	return facts, nil
}

// parentOf reads the parent of company; more is false for a root.
func (c *Client) parentOf(ctx context.Context, consistency *v1.Consistency, company string) (parent string, more bool, err error) {
	var parents []string
	err = c.readAt(ctx, consistency, &v1.RelationshipFilter{
		ResourceType:       authz.TypeCompany,
		OptionalResourceId: EncodeID(company),
		OptionalRelation:   authz.RelationParent,
	}, 2, func(rel authz.Relationship) error {
		if rel.Resource != company || rel.Relation != authz.RelationParent || rel.SubjectType != authz.TypeCompany {
			return fmt.Errorf("spicedb: explain facts: read %s#%s@%s:%s asking for the parent of %q",
				rel.Resource, rel.Relation, rel.SubjectType, rel.SubjectID, company)
		}
		parents = append(parents, rel.SubjectID)
		return nil
	})
	switch {
	case err != nil:
		return "", false, err
	case len(parents) > 1:
		return "", false, fmt.Errorf("spicedb: explain facts: company %q has more than one parent", company)
	case len(parents) == 0:
		return "", false, nil
	}
	return parents[0], true, nil
}

// directRoles reads the roles user holds on company itself, strongest first.
func (c *Client) directRoles(ctx context.Context, consistency *v1.Consistency, user, company string) ([]authz.Role, error) {
	var roles []authz.Role
	err := c.readAt(ctx, consistency, &v1.RelationshipFilter{
		ResourceType:       authz.TypeCompany,
		OptionalResourceId: EncodeID(company),
		OptionalSubjectFilter: &v1.SubjectFilter{
			SubjectType:       authz.TypeUser,
			OptionalSubjectId: EncodeID(user),
		},
	}, 0, func(rel authz.Relationship) error {
		if rel.Resource != company || rel.SubjectType != authz.TypeUser || rel.SubjectID != user {
			return fmt.Errorf("spicedb: explain facts: read %s#%s@%s:%s asking for the roles of %q on %q",
				rel.Resource, rel.Relation, rel.SubjectType, rel.SubjectID, user, company)
		}
		if rel.Relation == authz.RelationParent {
			return nil // a company's parent is a company, never this user
		}
		role, err := authz.ParseRole(rel.Relation)
		if err != nil {
			return fmt.Errorf("spicedb: explain facts: relation %q of %q on %q is not a role", rel.Relation, user, company)
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(roles, func(a, b authz.Role) int {
		return slices.Index(authz.Roles, a) - slices.Index(authz.Roles, b)
	})
	return roles, nil
}

// readAt streams to fn the plain relationships filter selects, read with
// consistency under a deadline; limit 0 reads them all.
func (c *Client) readAt(ctx context.Context, consistency *v1.Consistency, filter *v1.RelationshipFilter, limit uint32, fn func(authz.Relationship) error) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	stream, err := c.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		Consistency:        consistency,
		RelationshipFilter: filter,
		OptionalLimit:      limit,
	})
	if err != nil {
		return translate("explain facts", err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return translate("explain facts", err)
		}
		rel, err := fromV1Plain(resp.GetRelationship())
		if err != nil {
			return fmt.Errorf("spicedb: explain facts: %w", err)
		}
		if err := fn(rel); err != nil {
			return err
		}
	}
}
