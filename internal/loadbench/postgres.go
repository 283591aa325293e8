package loadbench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// loadTimeout bounds writing the data set.
const loadTimeout = 10 * time.Minute

// openPool connects at most conns sessions to databaseURL. synchronousCommit
// is for writers whose commits must reach logical decoding at once: the
// throwaway cluster runs with synchronous_commit=off, under which a commit
// waits for the WAL writer (up to 200 ms), as no production server would.
func openPool(ctx context.Context, databaseURL string, conns int, synchronousCommit bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	cfg.MaxConns = int32(conns)
	cfg.ConnConfig.ConnectTimeout = callTimeout
	if synchronousCommit {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	return pool, nil
}

// loadRows writes the data set with COPY, parents first as the foreign key
// wants, and refreshes the planner's statistics, as a table this size
// would have them.
func loadRows(ctx context.Context, db *pgxpool.Pool, d *Dataset) error {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	companies := make([][]any, len(d.Companies))
	for i, c := range d.Companies {
		var parent *string
		if c.ParentID != "" {
			parent = &c.ParentID
		}
		companies[i] = []any{c.ID, c.Name, parent}
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"companies"}, []string{"id", "name", "parent_id"}, pgx.CopyFromRows(companies)); err != nil {
		return fmt.Errorf("load companies: %w", err)
	}
	memberships := make([][]any, len(d.Memberships))
	for i, m := range d.Memberships {
		memberships[i] = []any{m.UserID, m.CompanyID, string(m.Role), string(m.Status)}
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"company_memberships"}, []string{"user_id", "company_id", "role", "status"}, pgx.CopyFromRows(memberships)); err != nil {
		return fmt.Errorf("load memberships: %w", err)
	}
	if _, err := db.Exec(ctx, `VACUUM ANALYZE companies, company_memberships`); err != nil {
		return fmt.Errorf("load: analyze: %w", err)
	}
	return nil
}

// analyze refreshes the planner's statistics of a SpiceDB datastore after
// its bulk import, as docs/operations.md tells operators to: until
// autovacuum gets to it, PostgreSQL plans SpiceDB's queries as if the
// relationship table were empty, and whichever system is measured first
// pays for it.
func analyze(ctx context.Context, databaseURL string) error {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// checkSQL is the check a team would write over the two tables: walk up
// the parent chain from the company, and look for an active membership of
// the user on any company of it with a role that grants the permission.
const checkSQL = `WITH RECURSIVE chain (id, parent_id) AS (
	SELECT id, parent_id FROM companies WHERE id = $2
	UNION ALL
	SELECT c.id, c.parent_id FROM companies c JOIN chain ON c.id = chain.parent_id
)
SELECT EXISTS (
	SELECT 1 FROM company_memberships m JOIN chain ON m.company_id = chain.id
	WHERE m.user_id = $1 AND m.status = 'active' AND m.role = ANY ($3)
)`

// listSQL is the list a team would write: every company below (and at)
// one where the user holds an active role that grants the permission.
const listSQL = `WITH RECURSIVE visible (id) AS (
	SELECT company_id FROM company_memberships
	WHERE user_id = $1 AND status = 'active' AND role = ANY ($2)
	UNION
	SELECT c.id FROM companies c JOIN visible v ON c.parent_id = v.id
)
SELECT c.id, c.name, c.parent_id FROM companies c JOIN visible USING (id) ORDER BY c.id`

// grantingRoles lists the roles that grant p, for the SQL's role = ANY.
func grantingRoles(p authz.Permission) []string {
	var roles []string
	for _, r := range authz.Roles {
		if r.Grants(p) {
			roles = append(roles, string(r))
		}
	}
	return roles
}

// sqlSystem answers from the application's tables, through pgx from this
// process: no HTTP, no token.
type sqlSystem struct{ db *pgxpool.Pool }

func (s sqlSystem) check(ctx context.Context, c Check) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var allowed bool
	err := s.db.QueryRow(ctx, checkSQL, c.User, c.Company, grantingRoles(c.Permission)).Scan(&allowed)
	return allowed, err
}

func (s sqlSystem) list(ctx context.Context, user string, p authz.Permission) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rows, _ := s.db.Query(ctx, listSQL, user, grantingRoles(p))
	// The whole rows, as the gateway answers them; the ID is what is
	// compared.
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id, name string
		var parent *string
		err := row.Scan(&id, &name, &parent)
		return id, err
	})
}

// dropSlot removes a persistent replication slot once its sync has gone:
// left behind, it would keep WAL for the rest of the run. A stopped
// walsender lets go of its slot a moment after its client, so this polls.
func dropSlot(ctx context.Context, db *pgxpool.Pool, slot string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name)
			FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NULL`, slot)
		var left bool
		if err == nil {
			err = db.QueryRow(ctx, `SELECT exists (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, slot).Scan(&left)
		}
		if err != nil {
			return fmt.Errorf("drop slot %s: %w", slot, err)
		}
		if !left {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop slot %s: still active: %w", slot, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
