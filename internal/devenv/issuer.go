package devenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// JWKSPath is where an Issuer serves its public key set, as identity
// providers do.
const JWKSPath = "/.well-known/jwks.json"

// MaxTTL bounds the lifetime a /token request may ask for: a token pasted
// into a shell history should not outlive the working day by much.
const MaxTTL = 24 * time.Hour

// Issuer is a development identity provider: one ES256 signing key, the
// public key set (JWKS) of it, and tokens signed with it for any subject.
type Issuer struct {
	issuer, audience string
	// key is the private key, with its kid, alg and use set.
	key jwk.Key
	kid string
}

// NewIssuer wraps priv, a P-256 key. The kid is the key's RFC 7638
// thumbprint, so the same key always publishes the same kid.
func NewIssuer(issuer, audience string, priv *ecdsa.PrivateKey) (*Issuer, error) {
	if priv == nil || priv.Curve != elliptic.P256() {
		// Tokens are ES256, which is P-256 and nothing else.
		return nil, errors.New("issuer: want an ECDSA P-256 key")
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	kid, _ := key.KeyID()
	return &Issuer{issuer: issuer, audience: audience, key: key, kid: kid}, nil
}

// GenerateIssuer is NewIssuer with a fresh key that lives as long as the
// Issuer: a throwaway identity provider for the demo and tests.
func GenerateIssuer(issuer, audience string) (*Issuer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	return NewIssuer(issuer, audience, priv)
}

// Issuer is the "iss" of every minted token.
func (i *Issuer) Issuer() string { return i.issuer }

// Audience is the "aud" of every minted token.
func (i *Issuer) Audience() string { return i.audience }

// KeyID is the "kid" of the signing key, in tokens and in the key set.
func (i *Issuer) KeyID() string { return i.kid }

// JWKS returns the public key set, as the issuer serves it. The same key
// gives the same bytes.
func (i *Issuer) JWKS() ([]byte, error) {
	pub, err := i.key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("issuer jwks: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("issuer jwks: %w", err)
	}
	data, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("issuer jwks: %w", err)
	}
	return data, nil
}

// WriteJWKSFile writes the public key set to path (mode 0644: public, and
// readable by a reader running as another user), atomically: a reader
// never sees half a key set.
func (i *Issuer) WriteJWKSFile(path string) error {
	jwks, err := i.JWKS()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, jwks, jwksFileMode)
}

// Mint signs a token for subject with iss, aud, iat and exp (now plus ttl,
// so a negative ttl makes an expired token). An empty subject leaves out
// "sub". Entries of extra are set last, so they may override any claim; a
// nil value removes the claim instead.
func (i *Issuer) Mint(subject string, ttl time.Duration, extra map[string]any) (string, error) {
	return i.mint(time.Now(), subject, ttl, extra)
}

func (i *Issuer) mint(now time.Time, subject string, ttl time.Duration, extra map[string]any) (string, error) {
	tok := jwt.New()
	claims := map[string]any{
		jwt.IssuerKey:     i.issuer,
		jwt.AudienceKey:   []string{i.audience},
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
			return "", fmt.Errorf("issuer mint: claim %q: %w", name, err)
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), i.key))
	if err != nil {
		return "", fmt.Errorf("issuer mint: %w", err)
	}
	return string(signed), nil
}

// serveJWKS answers GET JWKSPath.
func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	jwks, err := i.JWKS()
	if err != nil {
		http.Error(w, "could not encode the key set", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(jwks)
}

// Handler serves the development issuer's endpoints:
//
//	GET /.well-known/jwks.json         the public key set
//	GET /token?sub=USER[&ttl=DURATION] a signed token for USER, as plain text
//	GET /healthz                       liveness
//
// A token request without ttl gets defaultTTL; one may ask for at most
// MaxTTL. Tokens from /token also carry "nbf" (their "iat").
func (i *Issuer) Handler(defaultTTL time.Duration, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, i.serveJWKS)
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		subject := q.Get("sub")
		if subject == "" {
			http.Error(w, "missing ?sub=<user id>", http.StatusBadRequest)
			return
		}
		ttl := defaultTTL
		if s := q.Get("ttl"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > MaxTTL {
				http.Error(w, fmt.Sprintf("ttl %q: want a Go duration above 0 and at most %s, such as 30m", s, MaxTTL), http.StatusBadRequest)
				return
			}
			ttl = d
		}
		now := time.Now()
		token, err := i.mint(now, subject, ttl, map[string]any{jwt.NotBeforeKey: now})
		if err != nil {
			logger.Error("mint failed", "sub", subject, "error", err)
			http.Error(w, "could not sign the token", http.StatusInternalServerError)
			return
		}
		logger.Info("token minted", "sub", subject, "ttl", ttl)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		// The newline ends the line in a terminal; $(...) strips it.
		_, _ = fmt.Fprintln(w, token)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// ServeJWKS serves the public key set, and nothing else, at JWKSPath on a
// free loopback port, so a gateway can fetch it from a URL as it would
// from an identity provider. It returns that URL and a func that stops the
// server.
func (i *Issuer) ServeJWKS() (jwksURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("jwks listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, i.serveJWKS)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	return "http://" + ln.Addr().String() + JWKSPath, func() { _ = srv.Close() }, nil
}
