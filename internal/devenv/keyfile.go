package devenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// pemType is the PEM block type of a PKCS#8 private key.
const pemType = "PRIVATE KEY"

// File modes: the private key is for this process's user only; the public
// key set is for anyone, in particular a reader that mounts the volume
// (tenantgate serve in compose) under a user of its own.
const (
	keyFileMode  fs.FileMode = 0o600
	jwksFileMode fs.FileMode = 0o644
)

// LoadOrCreateKey reads the P-256 key in path (PKCS#8 PEM), or generates
// one and writes it there (mode 0600) when the file does not exist; created
// tells which. A file that holds no such key is an error, never replaced:
// that would invalidate every token signed with the key it held.
func LoadOrCreateKey(path string) (key *ecdsa.PrivateKey, created bool, err error) {
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
