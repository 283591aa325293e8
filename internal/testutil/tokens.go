package testutil

import "github.com/tenantgate/tenantgate/internal/devenv"

// TokenIssuer is the development issuer of package devenv, under the name
// tests knew it by.
type TokenIssuer = devenv.Issuer

// NewTokenIssuer is devenv.GenerateIssuer: an issuer with a fresh P-256
// key. New code calls devenv directly.
func NewTokenIssuer(issuer, audience string) (*TokenIssuer, error) {
	return devenv.GenerateIssuer(issuer, audience)
}
