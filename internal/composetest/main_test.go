package composetest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/mod/modfile"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// The seed test needs a PostgreSQL; this stops the one it starts.
func TestMain(m *testing.M) { testutil.PostgresMain(m) }

const composeFile = "docker-compose.yml"

// Service names of the stack.
const (
	svcPostgres       = "postgres"
	svcSpiceDBStore   = "spicedb-datastore"
	svcSpiceDBMigrate = "spicedb-migrate"
	svcSpiceDB        = "spicedb"
	svcMigrate        = "migrate"
	svcSeed           = "seed"
	svcSync           = "sync"
	svcDevIssuer      = "devissuer"
	svcServe          = "serve"
)

const (
	// Dockerfile stages compose builds.
	tenantgateTarget = "tenantgate"
	devissuerTarget  = "devissuer"

	spicedbImageRepo  = "authzed/spicedb"
	postgresImageRepo = "postgres"
	// postgresListenPort is where the postgres image listens.
	postgresListenPort = "5432"
)

// moduleRoot is where go.mod, the Dockerfile and the compose file are.
var moduleRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: %w", os.ErrNotExist)
		}
		dir = parent
	}
})

func root(t *testing.T) string {
	t.Helper()
	dir, err := moduleRoot()
	if err != nil {
		t.Fatalf("find the module root: %v", err)
	}
	return dir
}

func readRootFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// project is the stack as `docker compose` loads it (schema validation,
// anchors and merge keys, interpolation, relative paths), with an empty
// environment for interpolation so that a developer's shell cannot change
// what is tested. Every test reads it and none changes it.
var project = sync.OnceValues(func() (*types.Project, error) {
	dir, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, composeFile)}, cli.WithWorkingDirectory(dir))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
})

func stack(t *testing.T) *types.Project {
	t.Helper()
	p, err := project()
	if err != nil {
		t.Fatalf("compose-go cannot load %s: %v", composeFile, err)
	}
	return p
}

func service(t *testing.T, name string) types.ServiceConfig {
	t.Helper()
	s, err := stack(t).GetService(name)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return s
}

// env is a service's environment; a variable without a value (which docker
// compose would copy from the host) fails the test.
func env(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	out := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("service %s: %s has no value, so it would come from the host's environment", s.Name, k)
			continue
		}
		out[k] = *v
	}
	return out
}

// goMod is the module's go.mod.
func goMod(t *testing.T) *modfile.File {
	t.Helper()
	f, err := modfile.Parse("go.mod", []byte(readRootFile(t, "go.mod")), nil)
	if err != nil {
		t.Fatalf("parse go.mod: %v", err)
	}
	return f
}

func requiredVersion(t *testing.T, module string) string {
	t.Helper()
	for _, r := range goMod(t).Require {
		if r.Mod.Path == module {
			return r.Mod.Version
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}

// listenPort is the port of a listen address such as ":8080".
func listenPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("listen address %q: port is not a number", addr)
	}
	return port
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkPostgresURL asserts that raw reaches the PostgreSQL of service
// server by its service name, with the user, password and database that
// service's image creates.
func checkPostgresURL(t *testing.T, what, raw, server string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	pgEnv := env(t, service(t, server))
	password, _ := u.User.Password()
	got := []string{u.Scheme, u.Hostname(), u.Port(), u.User.Username(), password, strings.TrimPrefix(u.Path, "/")}
	want := []string{"postgres", server, postgresListenPort, pgEnv["POSTGRES_USER"], pgEnv["POSTGRES_PASSWORD"], pgEnv["POSTGRES_DB"]}
	for i, field := range []string{"scheme", "host", "port", "user", "password", "database"} {
		if got[i] != want[i] || want[i] == "" {
			t.Errorf("%s: %s is %q, want %q (service %s)", what, field, got[i], want[i], server)
		}
	}
}
