package devenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyIsCreatedOnceAndKept(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	first, created, err := LoadOrCreateKey(keyFile)
	if err != nil || !created {
		t.Fatalf("first start: created %v, err %v", created, err)
	}
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %o, want 600", perm)
	}
	second, created, err := LoadOrCreateKey(keyFile)
	if err != nil || created {
		t.Fatalf("second start: created %v, err %v", created, err)
	}
	if !first.Equal(second) {
		t.Fatal("a restart generated another key instead of loading the saved one")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(keyFile), ".*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func TestBadKeyFilesAreRefused(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not PEM", []byte("hello"), "no \"PRIVATE KEY\" PEM block"},
		{"other PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "no \"PRIVATE KEY\" PEM block"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: []byte{1, 2, 3}}), "parse"},
		{"wrong curve", pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), "want an ECDSA P-256 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
			if err := os.WriteFile(keyFile, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKey(keyFile)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			// A bad file is reported, never silently replaced: that would
			// invalidate every token handed out.
			if data, _ := os.ReadFile(keyFile); string(data) != string(tt.data) {
				t.Fatal("the bad key file was overwritten")
			}
		})
	}
}
