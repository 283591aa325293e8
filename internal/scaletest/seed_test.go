package scaletest

import (
	"context"
	"crypto/md5"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// seedTimeout bounds one statement of the seed; the largest writes 200,000
// rows.
const seedTimeout = 2 * time.Minute

// tree is a company tree written straight into PostgreSQL, as an
// application sharing the tables could write it: a root with fanouts[0]
// children, each with fanouts[1] children, and so on. Company n of the tree
// (the root is 0, then level by level) has the ID prefix+md5(n), so ID order
// is unrelated to tree order, as with the random IDs applications use.
type tree struct {
	prefix  string
	fanouts []int
}

func (tr tree) root() string { return fmt.Sprintf("%s%x", tr.prefix, md5.Sum([]byte("0"))) }

// size is how many companies the tree holds.
func (tr tree) size() int {
	n, level := 1, 1
	for _, fan := range tr.fanouts {
		level *= fan
		n += level
	}
	return n
}

// insertLevel writes count companies numbered from first, the children of
// the companies numbered from parentFirst, fan each, in one statement.
const insertLevel = `
insert into companies (id, name, parent_id)
select $1 || md5(n::text), 'company ' || n, $1 || md5(($3 + (n - $2) / $4)::text)
from generate_series($2::int, $2::int + $5::int - 1) n`

// insert writes the tree, owned by owner on its root, one statement a
// level. Migration 1's guard against cycles and deep trees walks the tree
// for every row (half a millisecond each here: two minutes for 200,000), so
// it is off while the levels go in; the tree is three levels deep and has no
// cycle, which is all the guard would check. Every other trigger runs.
func (tr tree) insert(t *testing.T, db *pgxpool.Pool, owner string) {
	t.Helper()
	exec(t, db, `alter table companies disable trigger companies_guard_parent`)
	exec(t, db, `insert into companies (id, name) values ($1, $2)`, tr.root(), tr.prefix+" root")
	first, parentFirst, count := 1, 0, 1
	for _, fan := range tr.fanouts {
		count *= fan
		exec(t, db, insertLevel, tr.prefix, first, parentFirst, fan, count)
		parentFirst, first = first, first+count
	}
	exec(t, db, `alter table companies enable trigger companies_guard_parent`)
	grant(t, db, owner, tr.root(), "owner")
}

// grant gives user an active role on company.
func grant(t *testing.T, db *pgxpool.Pool, user, company, role string) {
	t.Helper()
	exec(t, db, `insert into company_memberships (user_id, company_id, role) values ($1, $2, $3)`, user, company, role)
}

func exec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), seedTimeout)
	defer cancel()
	if _, err := db.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("seed %q: %v", sql, err)
	}
}

// subtree is every company at or below root, in the byte order of IDs that
// pages follow: the truth a list must match, read from the rows.
func subtree(t *testing.T, db *pgxpool.Pool, root string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), seedTimeout)
	defer cancel()
	rows, err := db.Query(ctx, `
		with recursive below (id) as (
			select id from companies where id = $1
			union all
			select c.id from companies c join below b on c.parent_id = b.id
		)
		select id from below`, root)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// relationships is how many relationships the rows make: a parent link per
// company below a root and a role per active membership.
func relationships(t *testing.T, db *pgxpool.Pool) int {
	t.Helper()
	var n int
	err := db.QueryRow(t.Context(), `
		select (select count(*) from companies where parent_id is not null)
		     + (select count(*) from company_memberships where status = 'active')`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
