package mirror

import (
	"fmt"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Source tables of the data contract.
const (
	tableCompanies   = "companies"
	tableMemberships = "company_memberships"
)

// row is one decoded table row: column name to text value; a NULL column is
// absent.
type row map[string]string

// companyFromRow maps a companies row; only the columns that shape the
// permission graph are needed.
func companyFromRow(r row) (authz.Company, error) {
	c := authz.Company{ID: r["id"], ParentID: r["parent_id"]}
	if err := authz.ValidateCompanyID(c.ID); err != nil {
		return authz.Company{}, err
	}
	if c.ParentID != "" {
		if err := authz.ValidateCompanyID(c.ParentID); err != nil {
			return authz.Company{}, fmt.Errorf("parent: %w", err)
		}
	}
	return c, nil
}

// membershipFromRow maps a company_memberships row. A row another program
// wrote with a role or status tenantgate does not know is refused rather than
// guessed at.
func membershipFromRow(r row) (authz.Membership, error) {
	m := authz.Membership{ID: r["id"], UserID: r["user_id"], CompanyID: r["company_id"]}
	if err := authz.ValidateUserID(m.UserID); err != nil {
		return authz.Membership{}, err
	}
	if err := authz.ValidateCompanyID(m.CompanyID); err != nil {
		return authz.Membership{}, err
	}
	var err error
	if m.Role, err = authz.ParseRole(r["role"]); err != nil {
		return authz.Membership{}, err
	}
	if m.Status, err = authz.ParseStatus(r["status"]); err != nil {
		return authz.Membership{}, err
	}
	return m, nil
}

// relationshipOf is the edge a row of table stands for; ok is false when the
// row grants nothing.
func relationshipOf(table string, r row) (rel authz.Relationship, ok bool, err error) {
	switch table {
	case tableCompanies:
		c, err := companyFromRow(r)
		if err != nil {
			return authz.Relationship{}, false, err
		}
		rel, ok = authz.ParentRelationship(c)
		return rel, ok, nil
	case tableMemberships:
		m, err := membershipFromRow(r)
		if err != nil {
			return authz.Relationship{}, false, err
		}
		rel, ok = authz.MembershipRelationship(m)
		return rel, ok, nil
	}
	return authz.Relationship{}, false, fmt.Errorf("%w: table %q is not synced", authz.ErrInvalid, table)
}

// relationsOf lists the relations whose every relationship comes from table,
// so that a TRUNCATE of the table removes exactly those.
func relationsOf(table string) []string {
	switch table {
	case tableCompanies:
		return []string{authz.RelationParent}
	case tableMemberships:
		rels := make([]string, len(authz.Roles))
		for i, r := range authz.Roles {
			rels[i] = string(r)
		}
		return rels
	}
	return nil
}

// skippedRow is a row that could not be mapped, and why.
type skippedRow struct {
	table string
	row   row
	err   error
}

// change turns one row change into relationship updates: the old row's edge
// goes, the new row's edge comes. Either row may be nil (insert, delete). A
// row that cannot be mapped contributes nothing and is reported in skipped,
// so one bad row never blocks the others.
func change(table string, oldRow, newRow row) (updates []authz.Update, skipped []skippedRow) {
	for _, side := range []struct {
		r  row
		op authz.Op
	}{{oldRow, authz.OpDelete}, {newRow, authz.OpTouch}} {
		if side.r == nil {
			continue
		}
		rel, ok, err := relationshipOf(table, side.r)
		if err != nil {
			skipped = append(skipped, skippedRow{table: table, row: side.r, err: err})
			continue
		}
		if ok {
			updates = append(updates, authz.Update{Op: side.op, Rel: rel})
		}
	}
	return updates, skipped
}
