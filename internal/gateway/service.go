package gateway

import (
	"context"
	"fmt"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// service is the gateway's business logic: which questions to put to the
// Authorizer and how to join its answers with Postgres. It knows nothing of
// HTTP, and it turns every answer it cannot vouch for into an error.
type service struct {
	authz     Authorizer
	companies CompanyReader
	metrics   *metrics
}

func (s *service) check(ctx context.Context, req authz.CheckRequest, c authz.Consistency) (allowed bool, token string, err error) {
	allowed, token, err = s.authz.Check(ctx, req, c)
	if err != nil {
		s.metrics.recordFailedChecks(1)
		return false, "", fmt.Errorf("check: %w", err)
	}
	s.metrics.recordDecisions([]bool{allowed})
	return allowed, token, nil
}

// checkBulk answers all of reqs or none: a partial answer would leave the
// caller to guess which items are unknown.
func (s *service) checkBulk(ctx context.Context, reqs []authz.CheckRequest, c authz.Consistency) (allowed []bool, token string, err error) {
	allowed, token, err = s.authz.CheckBulk(ctx, reqs, c)
	if err == nil && len(allowed) != len(reqs) {
		err = fmt.Errorf("authorizer answered %d of %d checks", len(allowed), len(reqs))
	}
	if err != nil {
		s.metrics.recordFailedChecks(len(reqs))
		return nil, "", fmt.Errorf("bulk check: %w", err)
	}
	s.metrics.recordDecisions(allowed)
	return allowed, token, nil
}

// permissions reports every permission of user on company in one round trip.
func (s *service) permissions(ctx context.Context, user, company string, c authz.Consistency) (map[authz.Permission]bool, string, error) {
	reqs := make([]authz.CheckRequest, len(authz.Permissions))
	for i, p := range authz.Permissions {
		reqs[i] = authz.CheckRequest{User: user, Permission: p, Company: company}
	}
	allowed, token, err := s.checkBulk(ctx, reqs, c)
	if err != nil {
		return nil, "", err
	}
	perms := make(map[authz.Permission]bool, len(reqs))
	for i, req := range reqs {
		perms[req.Permission] = allowed[i]
	}
	return perms, token, nil
}

// listCompanies returns one page of the companies user holds p on, in the
// Authorizer's order, with the cursor of the next page ("" after the last).
// Companies SpiceDB still lists but Postgres no longer has were deleted
// while the sync catches up; they are dropped, so a page may be short.
func (s *service) listCompanies(ctx context.Context, user string, p authz.Permission, c authz.Consistency, limit int, cursor string) ([]authz.Company, string, error) {
	ids, next, err := s.authz.LookupCompanies(ctx, user, p, c, limit, cursor)
	if err != nil {
		return nil, "", fmt.Errorf("lookup companies: %w", err)
	}
	if len(ids) == 0 {
		return nil, next, nil
	}
	rows, err := s.companies.CompaniesByIDs(ctx, ids)
	if err != nil {
		return nil, "", fmt.Errorf("read companies: %w", err)
	}
	// Joining by ID, not by position, means only companies the Authorizer
	// named can ever be listed, whatever the reader returns.
	byID := make(map[string]authz.Company, len(rows))
	for _, row := range rows {
		byID[row.ID] = row
	}
	out := make([]authz.Company, 0, len(ids))
	for _, id := range ids {
		if row, ok := byID[id]; ok {
			out = append(out, row)
			delete(byID, id) // a repeated ID is listed once
		}
	}
	return out, next, nil
}
