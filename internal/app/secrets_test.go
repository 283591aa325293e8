package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestSecretFileFlagsExcludeTheirPlainFlag: a secret comes from its flag or
// its file, never both.
func TestSecretFileFlagsExcludeTheirPlainFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"database url", func(c *Config) { c.DatabaseURL, c.DatabaseURLFile = "postgres://x/y", "/f" }, "--database-url or --database-url-file"},
		{"spicedb token", func(c *Config) {
			c.SpiceDBEndpoint, c.SpiceDBToken, c.SpiceDBTokenFile = "spicedb:50051", "k", "/f"
		}, "--spicedb-token or --spicedb-token-file"},
		{"service token", func(c *Config) { c.ServiceToken, c.ServiceTokenFile = "0123456789abcdef", "/f" }, "--service-token or --service-token-file"},
		{"spicedb token file without an endpoint", func(c *Config) { c.SpiceDBTokenFile = "/f" }, "need --spicedb-endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.set(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an invalid config naming %q", err, tc.want)
			}
		})
	}
}

// TestSecretFilesAreReadAtStart: each file fills its plain flag, without
// its trailing newline; a file that cannot be used fails the start as a
// configuration error, without quoting the secret.
func TestSecretFilesAreReadAtStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := Default()
	cfg.DatabaseURLFile = write("db", "postgres://app:s3cret@db/app\n")
	cfg.SpiceDBTokenFile = write("key", "spicedb-key\r\n")
	cfg.ServiceTokenFile = write("svc", "0123456789abcdef")
	got, err := cfg.withSecretFiles()
	if err != nil {
		t.Fatal(err)
	}
	if got.DatabaseURL != "postgres://app:s3cret@db/app" || got.SpiceDBToken != "spicedb-key" || got.ServiceToken != "0123456789abcdef" {
		t.Errorf("read %q, %q, %q", got.DatabaseURL, got.SpiceDBToken, got.ServiceToken)
	}
	if p := got.databasePassword()(); p != "s3cret" {
		t.Errorf("database password = %q, want s3cret", p)
	}
	if Default().databasePassword() != nil || Default().currentServiceToken() != nil || Default().currentSpiceDBToken() != nil {
		t.Error("secrets from flags have a current value to follow")
	}

	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"missing file", func(c *Config) { c.SpiceDBTokenFile = filepath.Join(dir, "none") }},
		{"empty file", func(c *Config) { c.SpiceDBTokenFile = write("empty", "\n") }},
		{"short service token", func(c *Config) { c.ServiceTokenFile = write("short", "tooshort-secret\n") }},
		{"database url that does not parse", func(c *Config) { c.DatabaseURLFile = write("bad", "postgres://app:s3cret@db:notaport/app") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.set(&cfg)
			_, err := cfg.withSecretFiles()
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("withSecretFiles() = %v, want an invalid config", err)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "tooshort") {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

// TestSecretFileIsReadAgain: a changed file replaces the value while the
// process runs (content that cannot be used is refused by read, as
// TestSecretFilesAreReadAtStart shows, and keeps the last good value).
func TestSecretFileIsReadAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc")
	if err := os.WriteFile(path, []byte("first-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openSecretFile("service-token-file", path, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.watch(ctx, slog.New(slog.DiscardHandler)); close(done) }()
	defer func() { cancel(); <-done }()

	if err := os.WriteFile(path, []byte("second-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*secretPollInterval, func() error {
		if got := s.Value(); got != "second-token-0123456789" {
			return errors.New("still " + got)
		}
		return nil
	})
}
