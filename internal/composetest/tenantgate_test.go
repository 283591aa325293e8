package composetest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/pflag"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// flagEnv maps the environment variable of every tenantgate flag to the
// flag, from the code that registers them.
func flagEnv() map[string]string {
	cfg := app.Default()
	fs := pflag.NewFlagSet("tenantgate", pflag.ContinueOnError)
	app.BindFlags(fs, &cfg)
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) { out[app.EnvName(f.Name)] = f.Name })
	return out
}

// tenantgateConfig is the configuration a tenantgate container of service
// s runs with: its environment applied to the flags exactly as the binary
// applies it, and validated.
func tenantgateConfig(t *testing.T, s types.ServiceConfig) app.Config {
	t.Helper()
	known := flagEnv()
	vars := env(t, s)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if _, ok := known[k]; !ok && k != "DATABASE_URL" {
			t.Errorf("service %s: %s is not the environment variable of any tenantgate flag", s.Name, k)
		}
	}
	cfg := app.Default()
	fs := pflag.NewFlagSet(s.Name, pflag.ContinueOnError)
	app.BindFlags(fs, &cfg)
	if err := app.ApplyEnv(fs, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }); err != nil {
		t.Fatalf("service %s: tenantgate refuses its environment: %v", s.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("service %s: %v", s.Name, err)
	}
	return cfg
}

// TestEveryTenantgateVariableIsAFlag reads the raw file, so that a variable
// in an anchor or a comment is held to the same rule.
func TestEveryTenantgateVariableIsAFlag(t *testing.T) {
	known := flagEnv()
	if len(known) < 10 {
		t.Fatalf("only %d flags registered; is app.BindFlags still the source?", len(known))
	}
	raw := readRootFile(t, composeFile)
	names := regexp.MustCompile(`\b`+app.EnvPrefix+`[A-Z0-9_]+`).FindAllString(raw, -1)
	if len(names) == 0 {
		t.Fatalf("no %s variables in %s", app.EnvPrefix, composeFile)
	}
	for _, name := range names {
		if _, ok := known[name]; !ok {
			t.Errorf("%s names no flag of tenantgate", name)
		}
	}
}

// tenantgateSubcommands are the commands cmd/tenantgate registers, read from
// its source: each is a call command("name", ...).
func tenantgateSubcommands(t *testing.T) []string {
	t.Helper()
	file := filepath.Join(root(t), "cmd", "tenantgate", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		if fn, ok := call.Fun.(*ast.Ident); !ok || fn.Name != "command" {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			name, err := strconv.Unquote(lit.Value)
			if err == nil {
				names = append(names, name)
			}
		}
		return true
	})
	if !slices.Contains(names, "serve") {
		t.Fatalf("found subcommands %v in %s; has registering them changed?", names, file)
	}
	return names
}

func TestTenantgateServices(t *testing.T) {
	subcommands := tenantgateSubcommands(t)
	spicedbKey := env(t, service(t, svcSpiceDB))["SPICEDB_GRPC_PRESHARED_KEY"]
	spicedbPort := spicedbGRPCPort(t)

	// remoteSpiceDB is what sync and serve share: SpiceDB by service name,
	// its key, and plaintext (the compose network has no TLS).
	remoteSpiceDB := func(t *testing.T, s types.ServiceConfig, cfg app.Config) {
		t.Helper()
		host, port, err := net.SplitHostPort(cfg.SpiceDBEndpoint)
		if err != nil || host != svcSpiceDB || port != spicedbPort {
			t.Errorf("SpiceDB endpoint %q, want %s:%s (the spicedb service)", cfg.SpiceDBEndpoint, svcSpiceDB, spicedbPort)
		}
		if cfg.SpiceDBToken == "" || cfg.SpiceDBToken != spicedbKey {
			t.Errorf("SpiceDB token %q is not spicedb's preshared key %q", cfg.SpiceDBToken, spicedbKey)
		}
		if !cfg.SpiceDBInsecure {
			t.Error("SpiceDB serves plaintext here, but the client would dial TLS")
		}
		if cfg.SpiceDBDatastoreURL != "" {
			t.Error("an embedded datastore is configured")
		}
		if d, ok := s.DependsOn[svcSpiceDB]; !ok || d.Condition != healthy {
			t.Errorf("does not wait for spicedb to be healthy")
		}
	}
	// listensOn checks that the container listens where its port is
	// published and its healthcheck probes.
	listensOn := func(t *testing.T, s types.ServiceConfig, addr, path string) {
		t.Helper()
		port := listenPort(t, addr)
		if wantPorts[s.Name] != port {
			t.Errorf("listens on %s but publishes %s", port, wantPorts[s.Name])
		}
		wantProbe := []string{"CMD", "/usr/local/bin/healthprobe", "http://127.0.0.1:" + port + path}
		if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, wantProbe) {
			t.Errorf("healthcheck %v, want %v", s.HealthCheck, wantProbe)
		}
	}

	tests := []struct {
		name  string
		check func(t *testing.T, s types.ServiceConfig, cfg app.Config)
	}{
		{svcMigrate, func(t *testing.T, s types.ServiceConfig, cfg app.Config) {
			// It writes the SpiceDB schema that sync and serve wait for.
			remoteSpiceDB(t, s, cfg)
			if cfg.JWKSURL != "" || cfg.JWKSFile != "" {
				t.Error("migrate needs only the database and SpiceDB")
			}
		}},
		{svcSync, func(t *testing.T, s types.ServiceConfig, cfg app.Config) {
			remoteSpiceDB(t, s, cfg)
			listensOn(t, s, cfg.MetricsAddr, "/readyz")
			if cfg.Reconcile {
				t.Error("--reconcile makes the sync exit after one pass")
			}
			checkStopGrace(t, s, cfg)
		}},
		{svcServe, func(t *testing.T, s types.ServiceConfig, cfg app.Config) {
			remoteSpiceDB(t, s, cfg)
			listensOn(t, s, cfg.HTTPAddr, "/readyz")
			checkStopGrace(t, s, cfg)
			checkIssuerWiring(t, s, cfg)
			if err := (identity.Config{JWKSURL: cfg.JWKSURL, JWKSFile: cfg.JWKSFile, Issuer: cfg.Issuer, Audience: cfg.Audience, SubjectClaim: cfg.SubjectClaim}).Validate(); err != nil {
				t.Errorf("identity configuration: %v", err)
			}
			if err := (gateway.Config{ServiceToken: cfg.ServiceToken}).Validate(); err != nil {
				t.Errorf("gateway configuration: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := service(t, tt.name)
			if s.Build == nil || s.Build.Target != tenantgateTarget {
				t.Fatalf("not built from the Dockerfile's %s target", tenantgateTarget)
			}
			// The subcommand is the whole command; everything else comes
			// through the environment, where this test can check it.
			if len(s.Command) != 1 || s.Command[0] != tt.name || !slices.Contains(subcommands, tt.name) {
				t.Errorf("command %q, want [%q], a subcommand of tenantgate (%v)", s.Command, tt.name, subcommands)
			}
			if len(s.Entrypoint) != 0 {
				t.Errorf("entrypoint %q overrides the image's tenantgate binary", s.Entrypoint)
			}
			cfg := tenantgateConfig(t, s)
			checkPostgresURL(t, "database URL", cfg.DatabaseURL, svcPostgres)
			tt.check(t, s, cfg)
		})
	}
}

// checkStopGrace: docker sends SIGKILL after stop_grace_period (default
// 10s); tenantgate drains requests for up to --shutdown-timeout.
func checkStopGrace(t *testing.T, s types.ServiceConfig, cfg app.Config) {
	t.Helper()
	grace := 10 * time.Second
	if s.StopGracePeriod != nil {
		grace = time.Duration(*s.StopGracePeriod)
	}
	if grace <= cfg.ShutdownTimeout {
		t.Errorf("stop_grace_period %s is not longer than --shutdown-timeout %s: a stop would kill requests in flight", grace, cfg.ShutdownTimeout)
	}
}

// devissuerFlags are the flags cmd/devissuer defines, read from its source
// (fs.StringVar(&x, "name", ...) and the like).
func devissuerFlags(t *testing.T) []string {
	t.Helper()
	file := filepath.Join(root(t), "cmd", "devissuer", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Var") {
			return true
		}
		if lit, ok := call.Args[1].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if name, err := strconv.Unquote(lit.Value); err == nil {
				names = append(names, name)
			}
		}
		return true
	})
	if len(names) == 0 {
		t.Fatalf("no flags found in %s; has defining them changed?", file)
	}
	return names
}

// devissuerArgs is the devissuer service's command as flag name -> value.
func devissuerArgs(t *testing.T) map[string]string {
	t.Helper()
	known := devissuerFlags(t)
	args := map[string]string{}
	for _, arg := range service(t, svcDevIssuer).Command {
		name, value, ok := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !ok || !strings.HasPrefix(arg, "-") {
			t.Fatalf("devissuer argument %q: want -name=value", arg)
		}
		if !slices.Contains(known, name) {
			t.Fatalf("devissuer has no flag -%s (it has %v)", name, known)
		}
		args[name] = value
	}
	return args
}

// checkIssuerWiring: serve trusts exactly the tokens devissuer signs, with
// the key set devissuer writes into its volume. No JWKS URL: devissuer
// serves plain http on the compose network, which tenantgate refuses for
// anything but loopback.
func checkIssuerWiring(t *testing.T, serve types.ServiceConfig, cfg app.Config) {
	t.Helper()
	args := devissuerArgs(t)
	if cfg.JWKSURL != "" {
		t.Errorf("serve fetches the JWKS from %q; want the file devissuer writes (--jwks-file)", cfg.JWKSURL)
	}
	if cfg.JWKSFile == "" || args["jwks-file"] == "" {
		t.Fatalf("serve's --jwks-file is %q and devissuer's -jwks-file %q; want both set", cfg.JWKSFile, args["jwks-file"])
	}
	// The file serve reads is the file devissuer writes: the same named
	// volume, the same path inside it.
	serveMount, serveRel := mountOf(t, serve, cfg.JWKSFile)
	issuerMount, issuerRel := mountOf(t, service(t, svcDevIssuer), args["jwks-file"])
	if serveMount.Source != issuerMount.Source || serveRel != issuerRel {
		t.Errorf("serve reads %s (volume %s, %s), devissuer writes %s (volume %s, %s)",
			cfg.JWKSFile, serveMount.Source, serveRel, args["jwks-file"], issuerMount.Source, issuerRel)
	}
	if serveMount.Source != devissuerVolume {
		t.Errorf("the JWKS file is on volume %s, want devissuer's %s", serveMount.Source, devissuerVolume)
	}
	// serve only reads; devissuer writes.
	if !serveMount.ReadOnly {
		t.Errorf("serve mounts %s at %s writable, want read-only (:ro)", serveMount.Source, serveMount.Target)
	}
	if issuerMount.ReadOnly {
		t.Errorf("devissuer mounts %s read-only, so it cannot write its key or the JWKS file", issuerMount.Source)
	}
	if cfg.Issuer != args["issuer"] || cfg.Audience != args["audience"] {
		t.Errorf("serve wants iss %q aud %q; devissuer signs iss %q aud %q", cfg.Issuer, cfg.Audience, args["issuer"], args["audience"])
	}
}

// TestNoServiceSetsAJWKSURL: tenantgate refuses a plain-http JWKS URL to
// anything but loopback, a container's loopback is not another service, and
// devissuer has no https; the stack shares the key set as a file.
func TestNoServiceSetsAJWKSURL(t *testing.T) {
	p := stack(t)
	urlVar := app.EnvName("jwks-url")
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if v, ok := env(t, p.Services[name])[urlVar]; ok {
			t.Errorf("service %s sets %s=%q; tenantgate in compose reads the JWKS file devissuer writes", name, urlVar, v)
		}
	}
}

func TestDevIssuer(t *testing.T) {
	s := service(t, svcDevIssuer)
	args := devissuerArgs(t)
	for _, name := range []string{"addr", "issuer", "audience", "key-file", "jwks-file"} {
		if args[name] == "" {
			t.Errorf("-%s is not set: the compose file should not lean on the binary's defaults", name)
		}
	}
	if s.Build == nil || s.Build.Target != devissuerTarget {
		t.Errorf("not built from the Dockerfile's %s target", devissuerTarget)
	}
	port := listenPort(t, args["addr"])
	if wantPorts[svcDevIssuer] != port {
		t.Errorf("listens on %s but publishes %s", port, wantPorts[svcDevIssuer])
	}
	wantProbe := []string{"CMD", "/usr/local/bin/healthprobe", "http://127.0.0.1:" + port + "/healthz"}
	if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, wantProbe) {
		t.Errorf("healthcheck %v, want %v", s.HealthCheck, wantProbe)
	}
	// The key must be on the volume, or a restart would change it and
	// invalidate every token handed out; the JWKS file must be there for
	// serve to mount.
	keyDir := path.Dir(args["key-file"])
	for _, flag := range []string{"key-file", "jwks-file"} {
		// In keyDir itself: devissuer creates files, not directories.
		m, _ := mountOf(t, s, args[flag])
		if m.Source != devissuerVolume || m.Target != keyDir || path.Dir(args[flag]) != keyDir {
			t.Errorf("-%s %s is not in %s, where the %s volume is mounted (volumes %+v)", flag, args[flag], keyDir, devissuerVolume, s.Volumes)
		}
	}
	if !strings.Contains(readRootFile(t, "Dockerfile"), "--chown=65532:65532 /out/devissuer-data "+keyDir+"\n") {
		t.Errorf("the Dockerfile does not create %s owned by the image's user, so a fresh volume there would not be writable", keyDir)
	}
}
