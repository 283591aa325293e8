// Package testutil holds test and demo helpers: an ephemeral PostgreSQL
// cluster (initdb and pg_ctl in a temp dir), fresh migrated databases cloned
// from a template, and token minting with a throwaway signing key.
//
// The parts the demo command uses at run time (StartPostgres, TokenIssuer)
// live in files that do not import "testing"; the wrappers for tests
// (PostgresMain, NewTestDatabase) live in postgres_testing.go.
package testutil
