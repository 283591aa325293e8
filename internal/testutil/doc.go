// Package testutil holds what only tests need: fresh migrated databases
// cloned from a template on a PostgreSQL shared by a test binary
// (PostgresMain, NewTestDatabase) or a cluster of a test's own
// (NewTestPostgres), spicedb and tenantgate binaries built with go build and
// run as processes, and relationship comparisons.
//
// The throwaway PostgreSQL cluster and the development token issuer, which
// the demo command also uses at run time, live in internal/devenv; this
// package imports "testing" and must stay out of the tenantgate binary.
package testutil
