package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// secretPollInterval is how often a secret file is read again. Polling the
// content rather than watching for events works however the file is
// replaced, Kubernetes' swap of a symlinked directory included, and a few
// seconds is soon enough for a rotation that keeps the old secret valid
// for a while.
const secretPollInterval = 5 * time.Second

// secretFile is a secret read from a file and read again when the file
// changes. Its content is never logged, only its path.
type secretFile struct {
	flag, path string
	// validate refuses content that must not replace the current one;
	// its error must not quote the content.
	validate func(string) error
	value    atomic.Pointer[string]
}

func openSecretFile(flag, path string, validate func(string) error) (*secretFile, error) {
	s := &secretFile{flag: flag, path: path, validate: validate}
	v, err := s.read()
	if err != nil {
		return nil, fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	s.value.Store(&v)
	return s, nil
}

// read returns the file's content without the trailing newline an editor
// or `echo` leaves, once validate accepts it.
func (s *secretFile) read() (string, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", s.flag, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("--%s %s: empty", s.flag, s.path)
	}
	if err := s.validate(v); err != nil {
		return "", fmt.Errorf("--%s %s: %w", s.flag, s.path, err)
	}
	return v, nil
}

// Value is the secret as last read.
func (s *secretFile) Value() string { return *s.value.Load() }

// watch reads the file every secretPollInterval until ctx ends. Content it
// cannot use (the file gone, half written, invalid) keeps the last good
// value, with a warning each time the file changes to such content.
func (s *secretFile) watch(ctx context.Context, logger *slog.Logger) {
	tick := time.NewTicker(secretPollInterval)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v, err := s.read()
		switch {
		case err != nil:
			if err.Error() != lastErr {
				logger.Warn("secret file unusable; keeping the value read before", "flag", s.flag, "error", err)
			}
			lastErr = err.Error()
		case v != s.Value():
			lastErr = ""
			s.value.Store(&v)
			logger.Info("secret file changed; using its new content", "flag", s.flag, "path", s.path)
		default:
			lastErr = ""
		}
	}
}

// secretFiles are the secrets of a process that come from files; a nil
// field's secret, if any, comes from its flag.
type secretFiles struct {
	databaseURL, spiceDBToken, serviceToken *secretFile
}

// withSecretFiles reads every secret file configured into the field of its
// plain flag, so that everything that reads those sees the value at
// start, and keeps the files to be watched and read from later.
func (c Config) withSecretFiles() (Config, error) {
	var files secretFiles
	for _, f := range []struct {
		flag, path string
		into       *string
		file       **secretFile
		validate   func(string) error
	}{
		{"database-url-file", c.DatabaseURLFile, &c.DatabaseURL, &files.databaseURL, validateDatabaseURL},
		{"spicedb-token-file", c.SpiceDBTokenFile, &c.SpiceDBToken, &files.spiceDBToken, func(string) error { return nil }},
		{"service-token-file", c.ServiceTokenFile, &c.ServiceToken, &files.serviceToken, func(v string) error {
			return gateway.Config{ServiceToken: v}.Validate()
		}},
	} {
		if f.path == "" {
			continue
		}
		s, err := openSecretFile(f.flag, f.path, f.validate)
		if err != nil {
			return c, err
		}
		*f.into, *f.file = s.Value(), s
	}
	c.secrets = &files
	return c, nil
}

// validateDatabaseURL says whether v parses as a connection string, without
// quoting it: the parser's error may hold the password.
func validateDatabaseURL(v string) error {
	if _, err := pgconn.ParseConfig(v); err != nil {
		return errors.New("not a connection URL that parses")
	}
	return nil
}

// watch follows every secret file until ctx ends.
func (f *secretFiles) watch(ctx context.Context, logger *slog.Logger) {
	var watching sync.WaitGroup
	for _, s := range []*secretFile{f.databaseURL, f.spiceDBToken, f.serviceToken} {
		if s != nil {
			watching.Go(func() { s.watch(ctx, logger) })
		}
	}
	watching.Wait()
}

// currentSpiceDBToken is the SpiceDB key as last read from its file; nil
// when it comes from the flag.
func (c Config) currentSpiceDBToken() func() string {
	if c.secrets == nil || c.secrets.spiceDBToken == nil {
		return nil
	}
	return c.secrets.spiceDBToken.Value
}

// currentServiceToken is the service token as last read from its file;
// nil when it comes from the flag.
func (c Config) currentServiceToken() func() string {
	if c.secrets == nil || c.secrets.serviceToken == nil {
		return nil
	}
	return c.secrets.serviceToken.Value
}

// databasePassword is the password of the database URL as last read from
// its file, for new connections; nil when the URL comes from the flag.
// Only the password is taken from a changed URL: a new host or database
// needs a restart.
func (c Config) databasePassword() func() string {
	if c.secrets == nil || c.secrets.databaseURL == nil {
		return nil
	}
	file := c.secrets.databaseURL
	return func() string {
		// The file's content was parsed before it was taken.
		cc, _ := pgconn.ParseConfig(file.Value())
		return cc.Password
	}
}
