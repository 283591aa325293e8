package testutil

// This file must not import "testing": the demo command mints its tokens
// with it at run time.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TokenIssuer is a throwaway identity provider: an ES256 key, its public
// JWKS, and tokens signed with it.
type TokenIssuer struct {
	issuer   string
	audience string
	key      jwk.Key
}

// NewTokenIssuer generates a fresh P-256 key whose kid is its RFC 7638
// thumbprint.
func NewTokenIssuer(issuer, audience string) (*TokenIssuer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	return &TokenIssuer{issuer: issuer, audience: audience, key: key}, nil
}

// Issuer is the "iss" of every minted token.
func (ti *TokenIssuer) Issuer() string { return ti.issuer }

// Audience is the "aud" of every minted token.
func (ti *TokenIssuer) Audience() string { return ti.audience }

// JWKS returns the public key set, as an issuer serves it.
func (ti *TokenIssuer) JWKS() ([]byte, error) {
	pub, err := ti.key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("token issuer jwks: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("token issuer jwks: %w", err)
	}
	data, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("token issuer jwks: %w", err)
	}
	return data, nil
}

// Mint signs a token for subject with iss, aud, iat and exp (now plus ttl,
// so a negative ttl makes an expired token). An empty subject leaves out
// "sub". Entries of extra are set last, so they may override any claim; a
// nil value removes the claim instead.
func (ti *TokenIssuer) Mint(subject string, ttl time.Duration, extra map[string]any) (string, error) {
	now := time.Now()
	tok := jwt.New()
	claims := map[string]any{
		jwt.IssuerKey:     ti.issuer,
		jwt.AudienceKey:   ti.audience,
		jwt.IssuedAtKey:   now,
		jwt.ExpirationKey: now.Add(ttl),
	}
	if subject != "" {
		claims[jwt.SubjectKey] = subject
	}
	for name, value := range extra {
		if value == nil {
			delete(claims, name)
			continue
		}
		claims[name] = value
	}
	for name, value := range claims {
		if err := tok.Set(name, value); err != nil {
			return "", fmt.Errorf("token issuer mint: claim %q: %w", name, err)
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), ti.key))
	if err != nil {
		return "", fmt.Errorf("token issuer mint: %w", err)
	}
	return string(signed), nil
}
