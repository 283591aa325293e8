package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func parse(t *testing.T, args []string, env map[string]string) Config {
	t.Helper()
	cfg := Default()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ApplyEnv(fs, lookup); err != nil {
		t.Fatalf("apply env: %v", err)
	}
	return cfg
}

func TestFlagsAndEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
	}{
		{"default", nil, nil, func(c Config) bool { return c.HTTPAddr == ":8080" && c.SubjectClaim == "sub" }},
		{"flag", []string{"--http-addr=:9999"}, nil, func(c Config) bool { return c.HTTPAddr == ":9999" }},
		{"env", nil, map[string]string{"TENANTGATE_HTTP_ADDR": ":7777"}, func(c Config) bool { return c.HTTPAddr == ":7777" }},
		{"flag beats env", []string{"--http-addr=:1"}, map[string]string{"TENANTGATE_HTTP_ADDR": ":2"}, func(c Config) bool { return c.HTTPAddr == ":1" }},
		{"bool env", nil, map[string]string{"TENANTGATE_SPICEDB_INSECURE": "true"}, func(c Config) bool { return c.SpiceDBInsecure }},
		{"duration env", nil, map[string]string{"TENANTGATE_SHUTDOWN_TIMEOUT": "3s"}, func(c Config) bool { return c.ShutdownTimeout == 3*time.Second }},
		{"consistency wait default", nil, nil, func(c Config) bool { return c.ConsistencyWait == 5*time.Second }},
		{"consistency wait env", nil, map[string]string{"TENANTGATE_CONSISTENCY_WAIT": "750ms"}, func(c Config) bool { return c.ConsistencyWait == 750*time.Millisecond }},
		{"index on by default", nil, nil, func(c Config) bool { return c.Index && c.IndexVerifyFraction == 0 }},
		{"index off by env", nil, map[string]string{"TENANTGATE_INDEX": "false"}, func(c Config) bool { return !c.Index }},
		{"console on by default", nil, nil, func(c Config) bool { return c.Console && c.ConsoleOIDCClientID == "" }},
		{"console off by env", nil, map[string]string{"TENANTGATE_CONSOLE": "false"}, func(c Config) bool { return !c.Console }},
		{"console client by env", nil, map[string]string{"TENANTGATE_CONSOLE_OIDC_CLIENT_ID": "c1"}, func(c Config) bool { return c.ConsoleOIDCClientID == "c1" }},
		{"float flag", []string{"--index-verify-fraction=0.25"}, nil, func(c Config) bool { return c.IndexVerifyFraction == 0.25 }},
		{"DATABASE_URL fallback", nil, map[string]string{"DATABASE_URL": "postgres://x/y"}, func(c Config) bool { return c.DatabaseURL == "postgres://x/y" }},
		{"own env beats DATABASE_URL", nil, map[string]string{"DATABASE_URL": "postgres://x/y", "TENANTGATE_DATABASE_URL": "postgres://a/b"}, func(c Config) bool { return c.DatabaseURL == "postgres://a/b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cfg := parse(t, tt.args, tt.env); !tt.check(cfg) {
				t.Errorf("unexpected config %+v", cfg)
			}
		})
	}
}

func TestEveryFlagHasAnEnvVariable(t *testing.T) {
	cfg := Default()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		if !strings.Contains(f.Usage, "$"+EnvName(f.Name)) {
			t.Errorf("flag --%s does not document %s", f.Name, EnvName(f.Name))
		}
	})
	if n < 15 {
		t.Errorf("only %d flags bound", n)
	}
}

// TestEveryFlagIsInTheREADME keeps the README's flag table whole: an
// operator reads it, not the source. The bench's own flags are listed by
// `tenantgate bench --help` and docs/benchmarks.md instead.
func TestEveryFlagIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Name, "bench-") {
			return
		}
		if !bytes.Contains(readme, []byte("`--"+f.Name+"`")) {
			t.Errorf("flag --%s is not in the README's flag table", f.Name)
		}
	})
}

func TestBadEnvValueIsAnError(t *testing.T) {
	cfg := Default()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	err := ApplyEnv(fs, func(k string) (string, bool) { return "soon", k == "TENANTGATE_SHUTDOWN_TIMEOUT" })
	if err == nil || !strings.Contains(err.Error(), "TENANTGATE_SHUTDOWN_TIMEOUT") {
		t.Fatalf("ApplyEnv = %v, want an error naming the variable", err)
	}
}

func TestSecretsAreRedactedWhenLogged(t *testing.T) {
	cfg := Default()
	cfg.DatabaseURL = "postgres://app:hunter2@db:5432/app?sslmode=disable"
	cfg.SpiceDBDatastoreURL = "host=db password=hunter2"
	cfg.SpiceDBToken = "hunter2"
	cfg.ServiceToken = "hunter2"
	logged := cfg.LogValue().String()
	if strings.Contains(logged, "hunter2") {
		t.Fatalf("secret in logged config: %s", logged)
	}
	if !strings.Contains(logged, "postgres://app:REDACTED@db:5432/app") {
		t.Errorf("logged config lost the non-secret parts: %s", logged)
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // in the error, so the operator learns which flag
	}{
		{"remote with datastore", func(c *Config) { c.SpiceDBEndpoint, c.SpiceDBDatastoreURL = "x:1", "postgres://y" }, "--spicedb-datastore-url"},
		{"token without endpoint", func(c *Config) { c.SpiceDBToken = "t" }, "--spicedb-endpoint"},
		{"two key sets", func(c *Config) { c.JWKSURL, c.JWKSFile = "http://x", "f" }, "--jwks-url or --jwks-file"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "--shutdown-timeout"},
		{"consistency wait", func(c *Config) { c.ConsistencyWait = 0 }, "--consistency-wait"},
		{"index wait", func(c *Config) { c.IndexWait = -time.Second }, "--index-wait"},
		{"verify fraction high", func(c *Config) { c.IndexVerifyFraction = 1.5 }, "--index-verify-fraction"},
		{"verify fraction negative", func(c *Config) { c.IndexVerifyFraction = -0.1 }, "--index-verify-fraction"},
		{"slot upper case", func(c *Config) { c.SyncSlot = "Tenant-Gate" }, "--sync-slot"},
		{"slot empty", func(c *Config) { c.SyncSlot = "" }, "--sync-slot"},
		{"slot too long", func(c *Config) { c.SyncSlot = strings.Repeat("a", 64) }, "at most 63"},
		{"slot of the temporary kind", func(c *Config) { c.SyncSlot = "tenantgate_tmp_abc" }, "temporary"},
		{"http addr without port", func(c *Config) { c.HTTPAddr = "localhost" }, "--http-addr"},
		{"http addr empty", func(c *Config) { c.HTTPAddr = "" }, "--http-addr"},
		{"metrics port out of range", func(c *Config) { c.MetricsAddr = ":70000" }, "--metrics-addr"},
		{"endpoint with scheme", func(c *Config) { c.SpiceDBEndpoint = "grpc://spicedb:50051" }, "--spicedb-endpoint"},
		{"endpoint without port", func(c *Config) { c.SpiceDBEndpoint = "spicedb" }, "--spicedb-endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("Validate() = %v, want an error wrapping authz.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to name %q", err, tt.want)
			}
		})
	}
}

func TestValidAddressesAndSlots(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.HTTPAddr = ":0" },
		func(c *Config) { c.HTTPAddr = "[::1]:8080" },
		func(c *Config) { c.MetricsAddr = "" },
		func(c *Config) { c.SpiceDBEndpoint = "spicedb.internal:50051" },
		func(c *Config) { c.SyncSlot = "tenantgate_eu_2" },
		func(c *Config) { c.SyncSlot = strings.Repeat("a", 63) },
	} {
		cfg := Default()
		mutate(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Errorf("valid config refused: %v", err)
		}
	}
}

// TestServeChecksIdentityBeforeBackends: a key set over plain http to
// another host is refused at once, naming the flag's problem, before any
// database is dialled (the URL given would never answer).
func TestServeChecksIdentityBeforeBackends(t *testing.T) {
	cfg := Default()
	cfg.DatabaseURL = "postgres://nobody@192.0.2.1:1/none?connect_timeout=30"
	cfg.JWKSURL, cfg.Issuer, cfg.Audience = "http://idp.example/jwks.json", "https://idp.example", "aud"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Serve(ctx, cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), "must use https") {
		t.Fatalf("Serve() = %v, want the plain-http key set refused as invalid", err)
	}
}
