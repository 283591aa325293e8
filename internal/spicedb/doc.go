// Package spicedb is tenantgate's only door to SpiceDB. It turns the domain's
// relationships and permission questions into SpiceDB API calls, either to a
// server running in this process (memory or Postgres datastore) or to a
// remote cluster through authzed-go, and translates SpiceDB's errors into the
// domain's error kinds once, here.
//
// Every answer that is not a definite "has permission" is a deny: conditional
// (caveated) results, unknown results and errors never become an allow.
package spicedb
