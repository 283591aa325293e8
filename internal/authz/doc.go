// Package authz is tenantgate's domain: companies, memberships, roles,
// permissions, the relationships they become and the errors every layer
// shares. It imports neither pgx nor SpiceDB, so the rules it states can be
// read, and tested, without either.
package authz
