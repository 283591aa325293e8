package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// maxTTL bounds what a request may ask for: a token pasted into a shell
// history should not outlive the working day by much.
const maxTTL = 24 * time.Hour

// pemType is the PEM block type of a PKCS#8 private key.
const pemType = "PRIVATE KEY"

// File modes: the private key is for this process's user only; the public
// key set is for anyone, in particular a reader that mounts the volume
// (tenantgate serve in compose) under a user of its own.
const (
	keyFileMode  fs.FileMode = 0o600
	jwksFileMode fs.FileMode = 0o644
)

// loadOrCreateKey reads the P-256 key in path, or generates one and writes
// it there (mode 0600) when the file does not exist. created tells which.
func loadOrCreateKey(path string) (key *ecdsa.PrivateKey, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := parseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("signing key %s: %w", path, err)
		}
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: encode: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), keyFileMode); err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	return key, true, nil
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("no %q PEM block", pemType)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		// Tokens are ES256, which is P-256 and nothing else.
		return nil, fmt.Errorf("want an ECDSA P-256 key, got %T", parsed)
	}
	return key, nil
}

// writeFileAtomic writes data to path with mode perm: beside it first, then
// renamed over it, so a crash mid-write never leaves a half key that would
// stop every later start, and a reader never sees a half key set.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	// CreateTemp makes the file 0600, so nothing can read it half-written;
	// the mode it ends with is set before the rename publishes it (Chmod is
	// not subject to the umask).
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// issuer signs tokens with one key and publishes its public half.
type issuer struct {
	issuer, audience string
	key              jwk.Key
	kid              string
	jwks             []byte
	now              func() time.Time
}

// newIssuer wraps key; its kid is the RFC 7638 thumbprint, so the same key
// file always publishes the same kid.
func newIssuer(iss, aud string, priv *ecdsa.PrivateKey) (*issuer, error) {
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
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	return &issuer{issuer: iss, audience: aud, key: key, kid: kid, jwks: jwks, now: time.Now}, nil
}

// mint signs a token for subject that expires after ttl.
func (i *issuer) mint(subject string, ttl time.Duration) (string, error) {
	now := i.now()
	tok, err := jwt.NewBuilder().
		Issuer(i.issuer).
		Audience([]string{i.audience}).
		Subject(subject).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(ttl)).
		Build()
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), i.key))
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return string(signed), nil
}

func (i *issuer) handler(defaultTTL time.Duration, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(i.jwks)
	})
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
			if err != nil || d <= 0 || d > maxTTL {
				http.Error(w, fmt.Sprintf("ttl %q: want a Go duration above 0 and at most %s, such as 30m", s, maxTTL), http.StatusBadRequest)
				return
			}
			ttl = d
		}
		token, err := i.mint(subject, ttl)
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
