package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// CompaniesByIDs returns the companies among ids, in the order of ids. Unknown
// ids are left out, and an id given twice comes back once, at its first place.
func (s *Store) CompaniesByIDs(ctx context.Context, ids []string) ([]authz.Company, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx,
		`select id, name, coalesce(parent_id, '') from companies where id = any($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("companies by ids: %w", translate(err))
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Company, error) {
		var c authz.Company
		err := row.Scan(&c.ID, &c.Name, &c.ParentID)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("companies by ids: %w", translate(err))
	}
	byID := make(map[string]authz.Company, len(found))
	for _, c := range found {
		byID[c.ID] = c
	}
	ordered := make([]authz.Company, 0, len(found))
	for _, id := range ids {
		if c, ok := byID[id]; ok {
			ordered = append(ordered, c)
			delete(byID, id)
		}
	}
	return ordered, nil
}

// UpsertCompany creates c or changes its name and parent. A parent that would
// close a loop or make the tree deeper than MaxDepth is an authz.ErrConflict;
// an unknown parent is an authz.ErrNotFound.
func (s *Store) UpsertCompany(ctx context.Context, c authz.Company) error {
	if err := authz.ValidateCompanyID(c.ID); err != nil {
		return fmt.Errorf("upsert company: %w", err)
	}
	if c.ParentID != "" {
		if err := authz.ValidateCompanyID(c.ParentID); err != nil {
			return fmt.Errorf("upsert company: parent: %w", err)
		}
	}
	if c.Name == "" {
		return fmt.Errorf("upsert company: %w: empty name", authz.ErrInvalid)
	}
	// An unchanged row is not rewritten: every write reaches the sync through
	// logical replication, and a no-op would cost it a message.
	_, err := s.pool.Exec(ctx, `
		insert into companies (id, name, parent_id) values ($1, $2, nullif($3, ''))
		on conflict (id) do update set name = excluded.name, parent_id = excluded.parent_id
		where (companies.name, companies.parent_id) is distinct from (excluded.name, excluded.parent_id)`,
		c.ID, c.Name, c.ParentID)
	if err != nil {
		return fmt.Errorf("upsert company %q: %w", c.ID, translate(err))
	}
	return nil
}

// UpsertMembership gives m.UserID the role and status of m in m.CompanyID,
// creating the membership or changing the existing one; m.ID is not used (a
// new row gets a generated ID, an existing row keeps its own). Role and status
// are checked by the table's constraints, the one place that judges them for
// the application's writes and ours alike: a bad one is an authz.ErrInvalid.
// An unknown company is an authz.ErrNotFound.
func (s *Store) UpsertMembership(ctx context.Context, m authz.Membership) error {
	if err := authz.ValidateUserID(m.UserID); err != nil {
		return fmt.Errorf("upsert membership: %w", err)
	}
	if err := authz.ValidateCompanyID(m.CompanyID); err != nil {
		return fmt.Errorf("upsert membership: %w", err)
	}
	_, err := s.pool.Exec(ctx, `
		insert into company_memberships (user_id, company_id, role, status) values ($1, $2, $3, $4)
		on conflict (user_id, company_id) do update
		set role = excluded.role, status = excluded.status, updated_at = now()
		where (company_memberships.role, company_memberships.status)
			is distinct from (excluded.role, excluded.status)`,
		m.UserID, m.CompanyID, string(m.Role), string(m.Status))
	if err != nil {
		return fmt.Errorf("upsert membership of %q in %q: %w", m.UserID, m.CompanyID, translate(err))
	}
	return nil
}

// DeleteMembership removes userID's membership in companyID; if there is
// none, it returns an authz.ErrNotFound.
func (s *Store) DeleteMembership(ctx context.Context, userID, companyID string) error {
	tag, err := s.pool.Exec(ctx,
		`delete from company_memberships where user_id = $1 and company_id = $2`, userID, companyID)
	if err != nil {
		return fmt.Errorf("delete membership of %q in %q: %w", userID, companyID, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete membership of %q in %q: %w", userID, companyID, authz.ErrNotFound)
	}
	return nil
}

// CompaniesAfter pages through every company in ID order: at most limit
// companies whose IDs sort after after ("" starts at the first).
func (s *Store) CompaniesAfter(ctx context.Context, after string, limit int) ([]authz.Company, error) {
	rows, err := s.pool.Query(ctx,
		`select id, name, coalesce(parent_id, '') from companies where id > $1 order by id limit $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("companies after: %w", translate(err))
	}
	companies, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Company, error) {
		var c authz.Company
		err := row.Scan(&c.ID, &c.Name, &c.ParentID)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("companies after: %w", translate(err))
	}
	return companies, nil
}
