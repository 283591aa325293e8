package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// service is the gateway's business logic: which questions to put to the
// Authorizer and how to join its answers with Postgres. It knows nothing of
// HTTP, and it turns every answer it cannot vouch for into an error.
//
// A platform role (authz.PlatformGrant) is a role on every company that
// exists in Postgres; it adds to what the Authorizer answers and never
// takes anything away, so its zero value leaves every answer unchanged.
type service struct {
	authz     Authorizer
	companies CompanyReader
	all       AllCompanies
	explainer Explainer
	users     UserLookup
	metrics   *metrics
}

// errExplanationDisagrees means the explanation read at the answer's
// revision does not give the answer; neither is then sent.
var errExplanationDisagrees = errors.New("explanation disagrees with the answer it explains")

func (s *service) check(ctx context.Context, req authz.CheckRequest, c authz.Consistency, platform authz.PlatformGrant) (allowed bool, token string, err error) {
	allowed, token, err = s.authz.Check(ctx, req, c)
	if err == nil && !allowed && platform.Grants(req.Permission) {
		var exist map[string]bool
		exist, err = s.existing(ctx, []string{req.Company})
		allowed = exist[req.Company]
		s.countPlatform(platform, allowed)
	}
	if err != nil {
		s.metrics.recordFailedChecks([]authz.CheckRequest{req})
		return false, "", fmt.Errorf("check: %w", err)
	}
	s.metrics.recordDecisions([]authz.CheckRequest{req}, []bool{allowed})
	return allowed, token, nil
}

// checkBulk answers all of reqs or none: a partial answer would leave the
// caller to guess which items are unknown.
func (s *service) checkBulk(ctx context.Context, reqs []authz.CheckRequest, c authz.Consistency, platform authz.PlatformGrant) (allowed []bool, token string, err error) {
	allowed, token, err = s.authz.CheckBulk(ctx, reqs, c)
	if err == nil && len(allowed) != len(reqs) {
		err = fmt.Errorf("authorizer answered %d of %d checks", len(allowed), len(reqs))
	}
	if err == nil && platform.Role != "" {
		// The authorizer may keep its answer (the index verifies it in
		// the background): the platform role's changes go to a copy.
		allowed = slices.Clone(allowed)
		err = s.addPlatform(ctx, reqs, allowed, platform)
	}
	if err != nil {
		s.metrics.recordFailedChecks(reqs)
		return nil, "", fmt.Errorf("bulk check: %w", err)
	}
	s.metrics.recordDecisions(reqs, allowed)
	return allowed, token, nil
}

// addPlatform turns the denials that platform grants into allows, for the
// companies that exist.
func (s *service) addPlatform(ctx context.Context, reqs []authz.CheckRequest, allowed []bool, platform authz.PlatformGrant) error {
	var companies []string
	for i, req := range reqs {
		if !allowed[i] && platform.Grants(req.Permission) {
			companies = append(companies, req.Company)
		}
	}
	if len(companies) == 0 {
		return nil
	}
	exist, err := s.existing(ctx, companies)
	if err != nil {
		return err
	}
	for i, req := range reqs {
		if !allowed[i] && platform.Grants(req.Permission) {
			allowed[i] = exist[req.Company]
			s.countPlatform(platform, allowed[i])
		}
	}
	return nil
}

// existing reports which of ids are companies in Postgres.
func (s *service) existing(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.companies.CompaniesByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read companies: %w", err)
	}
	exist := make(map[string]bool, len(rows))
	for _, row := range rows {
		exist[row.ID] = true
	}
	return exist, nil
}

func (s *service) countPlatform(platform authz.PlatformGrant, allowed bool) {
	if allowed {
		s.metrics.platform.WithLabelValues(string(platform.Role)).Inc()
	}
}

// permissions reports every permission of user on company in one round trip.
func (s *service) permissions(ctx context.Context, user, company string, c authz.Consistency, platform authz.PlatformGrant) (map[authz.Permission]bool, string, error) {
	reqs := make([]authz.CheckRequest, len(authz.Permissions))
	for i, p := range authz.Permissions {
		reqs[i] = authz.CheckRequest{User: user, Permission: p, Company: company}
	}
	allowed, token, err := s.checkBulk(ctx, reqs, c, platform)
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
// while the sync catches up; they are dropped, so a page may be short. A
// platform role that grants p lists every company instead, in ID order
// from Postgres.
func (s *service) listCompanies(ctx context.Context, user string, p authz.Permission, c authz.Consistency, limit int, cursor string, platform authz.PlatformGrant) ([]authz.Company, string, error) {
	if platform.Grants(p) {
		return s.listAll(ctx, limit, cursor, platform)
	}
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

func (s *service) listAll(ctx context.Context, limit int, after string, platform authz.PlatformGrant) ([]authz.Company, string, error) {
	rows, err := s.all.CompaniesAfter(ctx, after, limit)
	if err != nil {
		return nil, "", fmt.Errorf("list all companies: %w", err)
	}
	s.metrics.platform.WithLabelValues(string(platform.Role)).Add(float64(len(rows)))
	next := ""
	if len(rows) == limit {
		next = rows[len(rows)-1].ID
	}
	return rows, next, nil
}

// explain explains the answers of user on company for each permission of
// answers, from the relationships at token, the revision the answers came
// from. An explanation that does not give its answer fails the request:
// sending both would leave the caller with two truths.
func (s *service) explain(ctx context.Context, user, company, token string, platform authz.PlatformGrant, answers map[authz.Permission]bool) (map[authz.Permission]authz.Explanation, error) {
	if s.explainer == nil {
		return nil, errNoExplainer
	}
	facts, err := s.explainer.ExplainFacts(ctx, user, company, token)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	if platform.Role != "" {
		// A platform role holds on companies that exist; for any other
		// the explanation must not claim it.
		exist, err := s.existing(ctx, []string{company})
		if err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		if !exist[company] {
			platform = authz.PlatformGrant{}
		}
	}
	out := make(map[authz.Permission]authz.Explanation, len(answers))
	for _, p := range slices.Sorted(maps.Keys(answers)) {
		e := authz.Explain(user, p, facts, platform)
		if e.Allowed != answers[p] {
			return nil, fmt.Errorf("explain %s of %q on %q at %s: %w", p, user, company, token, errExplanationDisagrees)
		}
		out[p] = e
	}
	return out, nil
}
