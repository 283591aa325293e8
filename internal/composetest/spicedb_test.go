package composetest

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	spicedbcmd "github.com/authzed/spicedb/pkg/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/compose-spec/compose-go/v2/types"
)

// spicedbEnvPrefix is how SpiceDB maps a flag --foo-bar to SPICEDB_FOO_BAR
// (cobrautil.SyncViperPreRunE with the program name).
const spicedbEnvPrefix = "SPICEDB_"

// spicedbRoot is SpiceDB's own command tree at the version go.mod selects:
// the flags it accepts are the flags the image of that version accepts.
var spicedbRoot = sync.OnceValues(spicedbcmd.BuildRootCommand)

// spicedbCommand finds the command a SpiceDB service runs, and the
// arguments left after its name.
func spicedbCommand(t *testing.T, s types.ServiceConfig) (*cobra.Command, []string) {
	t.Helper()
	root, err := spicedbRoot()
	if err != nil {
		t.Fatalf("build SpiceDB's command tree: %v", err)
	}
	cmd, rest, err := root.Find(s.Command)
	if err != nil || cmd == root || !cmd.Runnable() {
		t.Fatalf("service %s: command %q is not a SpiceDB command (%v)", s.Name, s.Command, err)
	}
	return cmd, rest
}

// spicedbFlag finds the flag that environment variable name sets for cmd,
// among its own flags and those it inherits.
func spicedbFlag(cmd *cobra.Command, name string) *pflag.Flag {
	var found *pflag.Flag
	visit := func(f *pflag.Flag) {
		if spicedbEnvPrefix+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")) == name {
			found = f
		}
	}
	cmd.LocalFlags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return found
}

// spicedbGRPCPort is the port `spicedb serve` listens on for gRPC: the
// service's --grpc-addr, or SpiceDB's default.
func spicedbGRPCPort(t *testing.T) string {
	t.Helper()
	s := service(t, svcSpiceDB)
	cmd, _ := spicedbCommand(t, s)
	f := spicedbFlag(cmd, spicedbEnvPrefix+"GRPC_ADDR")
	if f == nil {
		t.Fatal("spicedb serve has no --grpc-addr")
	}
	addr := f.DefValue
	if v, ok := env(t, s)[spicedbEnvPrefix+"GRPC_ADDR"]; ok {
		addr = v
	}
	return listenPort(t, addr)
}

func TestSpiceDBServices(t *testing.T) {
	store := service(t, svcSpiceDBStore)
	if !slices.Equal(store.Command, []string{"postgres", "-c", "track_commit_timestamp=on"}) {
		t.Errorf("spicedb-datastore command %q: SpiceDB's Watch API needs track_commit_timestamp=on", store.Command)
	}

	tests := []struct {
		name     string
		wantCmd  string // the command path, as cobra names it
		wantArgs []string
		// want are variables whose values are fixed.
		want map[string]string
	}{
		{svcSpiceDBMigrate, "spicedb datastore migrate", []string{"head"}, map[string]string{
			"SPICEDB_DATASTORE_ENGINE":   "postgres",
			"SPICEDB_SKIP_RELEASE_CHECK": "true",
		}},
		{svcSpiceDB, "spicedb serve", nil, map[string]string{
			"SPICEDB_DATASTORE_ENGINE": "postgres",
			// Telemetry to third parties is always off (docs/design.md).
			"SPICEDB_TELEMETRY_ENDPOINT": "",
			"SPICEDB_SKIP_RELEASE_CHECK": "true",
			// The permission index's lag is one Watch heartbeat.
			"SPICEDB_WATCH_API_HEARTBEAT": "100ms",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := service(t, tt.name)
			cmd, args := spicedbCommand(t, s)
			if cmd.CommandPath() != tt.wantCmd || !slices.Equal(args, tt.wantArgs) {
				t.Errorf("runs %q with %q, want %q with %q", cmd.CommandPath(), args, tt.wantCmd, tt.wantArgs)
			}
			vars := env(t, s)
			for _, name := range slices.Sorted(maps.Keys(vars)) {
				f := spicedbFlag(cmd, name)
				if f == nil {
					t.Errorf("%s sets no flag of %q", name, cmd.CommandPath())
					continue
				}
				// The flag parses the value the way SpiceDB would.
				if err := f.Value.Set(vars[name]); err != nil {
					t.Errorf("%s=%q: %v", name, vars[name], err)
				}
			}
			for name, want := range tt.want {
				if got, ok := vars[name]; !ok || got != want {
					t.Errorf("%s = %q (set: %v), want %q", name, got, ok, want)
				}
			}
			checkPostgresURL(t, "SPICEDB_DATASTORE_CONN_URI", vars["SPICEDB_DATASTORE_CONN_URI"], svcSpiceDBStore)
		})
	}

	serve := service(t, svcSpiceDB)
	if key := env(t, serve)["SPICEDB_GRPC_PRESHARED_KEY"]; len(key) < 16 {
		t.Errorf("preshared key %q: without one SpiceDB refuses to start; keep it long", key)
	}
	wantProbe := []string{"CMD", "grpc_health_probe", "-addr=localhost:" + spicedbGRPCPort(t)}
	if serve.HealthCheck == nil || !slices.Equal(serve.HealthCheck.Test, wantProbe) {
		t.Errorf("healthcheck %v, want %v", serve.HealthCheck, wantProbe)
	}
	if got := wantPorts[svcSpiceDB]; got != spicedbGRPCPort(t) {
		t.Errorf("publishes %s, but SpiceDB listens on %s", got, spicedbGRPCPort(t))
	}
}
