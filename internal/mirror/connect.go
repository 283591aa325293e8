package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/authz"
)

const connectTimeout = 10 * time.Second

// source is the PostgreSQL the sync connects to, for every connection it
// opens: pool, lock, snapshot and replication connections alike.
type source struct {
	url string
	// password, when not nil, gives the password each connection logs in
	// with, asked as it connects: the URL's may have been rotated since.
	password func() string
}

// prepare readies cc for a connection about to open: it bounds connecting
// when the URL does not, and takes the password as it is now. The pool
// calls it before each of its connections too, so they log in with a
// rotated password as well.
func (s source) prepare(cc *pgx.ConnConfig) {
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	if s.password != nil {
		cc.Password = s.password()
	}
}

// connConfig is the configuration of one connection, to be opened at once.
func (s source) connConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return nil, fmt.Errorf("sync: %w: database url: %w", authz.ErrInvalid, err)
	}
	s.prepare(cfg)
	return cfg, nil
}

// openPool opens the sync's pool; it connects lazily, so a refusal to
// log in shows on the pool's first use.
func openPool(ctx context.Context, src source) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(src.url)
	if err != nil {
		return nil, fmt.Errorf("sync: %w: database url: %w", authz.ErrInvalid, err)
	}
	cfg.MaxConns = 4
	cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		src.prepare(cc)
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sync: pool: %w: %w", authz.ErrUnavailable, err)
	}
	return pool, nil
}

// passwordGrace is how long a sync whose password comes from a file
// (Config.Password) retries a password PostgreSQL refuses before it gives
// up. A role has one password, so a rotation changes it (ALTER ROLE)
// before the file, and the file is read again only every few seconds: a
// connection opened in between is refused, and the next one is not.
// Refused for longer, the password is wrong, which no retry cures; a sync
// that gives up is restarted by its orchestrator and reads the file anew,
// and its slot keeps its place, so nothing is lost either way.
const passwordGrace = 30 * time.Second

// forgiveRefusedPassword turns a refused password (28P01), which classify
// made permanent, into a failure to retry while the refusals of a password
// read from a file are younger than passwordGrace; any other outcome of a
// run ends the refusals. Only Run calls it, one run at a time.
func (s *Syncer) forgiveRefusedPassword(err error, now time.Time) error {
	var pgErr *pgconn.PgError
	if s.cfg.Password == nil || !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		s.passwordRefusedSince = time.Time{}
		return err
	}
	if s.passwordRefusedSince.IsZero() {
		s.passwordRefusedSince = now
	}
	if now.Sub(s.passwordRefusedSince) >= passwordGrace {
		return err
	}
	// %v, not %w: the cause must no longer wrap authz.ErrInvalid, which
	// would end the retries.
	return fmt.Errorf("sync: %w: PostgreSQL refused the password; retrying for up to %v in case the password file has not caught up with a rotation: %v",
		authz.ErrUnavailable, passwordGrace, err)
}
