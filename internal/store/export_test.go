package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ManageFailing runs a management decision whose every pass fails with
// err, and returns how many passes ran and the decision's error.
func (s *Store) ManageFailing(ctx context.Context, err error) (passes int, _ error) {
	d := &decision{actor: "tester", action: "test", company: "acme"}
	_, merr := s.manage(ctx, d, func(pgx.Tx, bool) error {
		passes++
		return err
	})
	return passes, merr
}
