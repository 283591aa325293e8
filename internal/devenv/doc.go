// Package devenv is the development environment that runs outside tests:
// what `tenantgate demo`, cmd/devissuer and the tests share.
//
//   - StartPostgres: a throwaway PostgreSQL cluster, created with initdb in a
//     temp dir and started with pg_ctl on a free loopback port (as the
//     "postgres" user when run as root), with wal_level=logical; Stop
//     removes it.
//   - Issuer: the one development token issuer. It signs ES256 tokens for
//     any subject with one P-256 key (GenerateIssuer for a throwaway key,
//     LoadOrCreateKey for a key kept in a PKCS#8 PEM file), serves its
//     public key set (Handler with /token and /healthz for cmd/devissuer,
//     ServeJWKS for the demo) and writes it to a file (WriteJWKSFile).
//
// The tenantgate binary links this package for its demo command, so it must
// not import "testing" or internal/testutil, nor build binaries; the helpers
// that do live in internal/testutil. Nothing here is fit for production:
// the issuer mints a token for anyone who asks.
package devenv
