package testutil

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Querier is what ExpectedRelationships reads rows through (a pool, a
// connection or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ExpectedRelationships derives, the plain way, the relationships the rows
// of the data contract stand for: the oracle a synced SpiceDB must equal.
// Rows the sync must refuse (a "*" or otherwise invalid user, a role or
// status outside the model) derive nothing.
func ExpectedRelationships(ctx context.Context, db Querier) (map[authz.Relationship]bool, error) {
	want := map[authz.Relationship]bool{}
	companies, err := db.Query(ctx, `SELECT id, parent_id FROM companies WHERE parent_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("expected relationships: %w", err)
	}
	for companies.Next() {
		var c authz.Company
		if err := companies.Scan(&c.ID, &c.ParentID); err != nil {
			return nil, fmt.Errorf("expected relationships: %w", err)
		}
		rel, _ := authz.ParentRelationship(c)
		want[rel] = true
	}
	if err := companies.Err(); err != nil {
		return nil, fmt.Errorf("expected relationships: %w", err)
	}
	members, err := db.Query(ctx, `SELECT user_id, company_id, role, status FROM company_memberships`)
	if err != nil {
		return nil, fmt.Errorf("expected relationships: %w", err)
	}
	for members.Next() {
		var m authz.Membership
		var role, status string
		if err := members.Scan(&m.UserID, &m.CompanyID, &role, &status); err != nil {
			return nil, fmt.Errorf("expected relationships: %w", err)
		}
		var roleErr, statusErr error
		m.Role, roleErr = authz.ParseRole(role)
		m.Status, statusErr = authz.ParseStatus(status)
		if authz.ValidateUserID(m.UserID) != nil || roleErr != nil || statusErr != nil {
			continue
		}
		if rel, ok := authz.MembershipRelationship(m); ok {
			want[rel] = true
		}
	}
	return want, members.Err()
}

// RelationshipReader streams the relationships a SpiceDB holds.
type RelationshipReader interface {
	ReadRelationships(ctx context.Context, fn func(authz.Relationship) error) error
}

// ActualRelationships reads every relationship r holds.
func ActualRelationships(ctx context.Context, r RelationshipReader) (map[authz.Relationship]bool, error) {
	got := map[authz.Relationship]bool{}
	err := r.ReadRelationships(ctx, func(rel authz.Relationship) error {
		got[rel] = true
		return nil
	})
	return got, err
}

// DiffRelationships describes how got differs from want, or is empty when
// they are equal.
func DiffRelationships(want, got map[authz.Relationship]bool) string {
	var missing, extra []string
	for r := range want {
		if !got[r] {
			missing = append(missing, fmt.Sprint(r))
		}
	}
	for r := range got {
		if !want[r] {
			extra = append(extra, fmt.Sprint(r))
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Sprintf("%d missing %.5v, %d extra %.5v", len(missing), missing, len(extra), extra)
}

// AwaitConverged polls until r (a SpiceDB) holds exactly the relationships
// the rows of db derive, and returns how many; once bound has passed it
// fails tb with the difference. The rows must not change meanwhile.
func AwaitConverged(tb testing.TB, bound time.Duration, db Querier, r RelationshipReader) int {
	tb.Helper()
	want, err := ExpectedRelationships(tb.Context(), db)
	if err != nil {
		tb.Fatal(err)
	}
	Eventually(tb, bound, func() error {
		got, err := ActualRelationships(tb.Context(), r)
		if err != nil {
			return err
		}
		if diff := DiffRelationships(want, got); diff != "" {
			return errors.New(diff)
		}
		return nil
	})
	return len(want)
}

// DropReplicationSlots removes every replication slot of the database at
// dbURL, so the database can be dropped. A slot whose reader is still
// disconnecting is waited for, within ctx.
func DropReplicationSlots(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("drop replication slots: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE database = current_database() AND NOT active`)
		if err != nil {
			return fmt.Errorf("drop replication slots: %w", err)
		}
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&left); err != nil {
			return fmt.Errorf("drop replication slots: %w", err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop replication slots: %d still active: %w", left, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
