package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// SQLSTATEs raised by the companies trigger of migration 1. Class "TG" is
// not used by PostgreSQL, so they cannot be confused with its own codes.
const (
	codeParentCycle = "TG001"
	codeTreeTooDeep = "TG002"
)

// translate gives err the authz kind it stands for, keeping the original
// error in the chain for logs and errors.As. A kind the caller sees comes
// with our own words (authz.Hide): PostgreSQL's message names tables,
// constraints and values. Unavailability is never shown, so its message
// keeps the server's text for every log. Errors without a kind (a bad URL,
// a bug in a query) pass through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	// A caller that gave up is not an outage.
	if errors.Is(err, context.Canceled) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch kind, words := kindOfSQLState(pgErr.Code); kind {
		case nil:
			return err
		case authz.ErrUnavailable:
			return fmt.Errorf("%w: %w", kind, err)
		default:
			return authz.Hide(kind, words, err)
		}
	}
	if unreachable(err) {
		return fmt.Errorf("%w: %w", authz.ErrUnavailable, err)
	}
	return err
}

// kindOfSQLState returns the kind of a SQLSTATE and, for the kinds the
// caller sees, what to tell them.
func kindOfSQLState(code string) (kind error, words string) {
	switch code {
	case "23505": // unique_violation
		return authz.ErrConflict, "conflicts with an existing row"
	case codeParentCycle:
		return authz.ErrConflict, "the company would become its own ancestor"
	case codeTreeTooDeep:
		return authz.ErrConflict, "the company tree would be too deep"
	case "23503": // foreign_key_violation
		// Every statement here that can break a foreign key names a company
		// that has to exist already.
		return authz.ErrNotFound, "names a company that does not exist"
	case "23502", "23514": // not_null_violation, check_violation
		return authz.ErrInvalid, "a value the database does not accept"
	case "57014", "57P01", "57P02", "57P03": // query_canceled (statement_timeout), admin/crash shutdown, cannot connect now
		return authz.ErrUnavailable, ""
	}
	switch {
	case strings.HasPrefix(code, "22"): // data exception: a value the column cannot hold (a NUL byte, bad UTF-8, too long)
		return authz.ErrInvalid, "a value the database cannot store"
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"): // connection exception, insufficient resources
		return authz.ErrUnavailable, ""
	}
	return nil, ""
}

// unavailable marks a database that could not be reached (a transaction
// that could not begin or commit) as authz.ErrUnavailable, and returns any
// other error, translated already or a decision, as it is.
func unavailable(err error) error {
	if err == nil || errors.Is(err, authz.ErrUnavailable) || !unreachable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", authz.ErrUnavailable, err)
}

// unreachable reports a failure to reach the server or to hear back from it
// in time, as opposed to an answer the server gave.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, puddle.ErrClosedPool)
}

// ConnectHint names the cause and the fix of a PostgreSQL refusal to
// connect that no retry can cure (a bad password, a login pg_hba.conf
// refuses, a database that does not exist), or is "" for any other error.
// Startup wraps such an error in authz.ErrInvalid so that it stops with it
// instead of retrying for ever.
func ConnectHint(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return ""
	}
	switch pgErr.Code {
	case "28P01": // invalid_password
		return "PostgreSQL refused the password: fix the user or password in --database-url"
	case "28000": // invalid_authorization_specification
		if strings.Contains(pgErr.Message, "replication connection") {
			return "pg_hba.conf has no entry for replication connections of this user: add one (host replication <user> <addr> scram-sha-256); managed services allow them with the replication privilege"
		}
		return "PostgreSQL refused the login (pg_hba.conf, or a role that may not log in): fix the user in --database-url or the server's pg_hba.conf"
	case "3D000": // invalid_catalog_name
		return "the database in --database-url does not exist: fix the URL"
	}
	return ""
}

// refusedForGood wraps a refusal ConnectHint knows in authz.ErrInvalid with
// its fix, and returns any other error as it is.
func refusedForGood(err error) error {
	if hint := ConnectHint(err); hint != "" {
		return fmt.Errorf("%w: %s: %w", authz.ErrInvalid, hint, err)
	}
	return err
}
