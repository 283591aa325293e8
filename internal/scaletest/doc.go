// Package scaletest runs tenantgate at the scale one tenant can reach on its
// own and checks that others do not pay for it: a user who owns a tree of
// 200,000 companies, written straight into PostgreSQL, must not make the
// lists of a user added to that tree, or of anybody else, slower per page
// than the size of a page. The gateway runs in process (embedded SpiceDB,
// the sync, the permission index) over a throwaway PostgreSQL.
//
// The package has tests only.
package scaletest
