package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/schema"
)

// stamped is tenantgate's schema text claiming stamp s, as a newer or older
// tenantgate would have written it.
func stamped(t *testing.T, s schema.Stamp) string {
	t.Helper()
	cur := schema.Current.String()
	if !strings.Contains(schema.Schema, cur) {
		t.Fatalf("schema.Schema lacks %q", cur)
	}
	return strings.Replace(schema.Schema, cur, s.String(), 1)
}

// unversioned is the schema as tenantgate wrote it before schemas carried
// versions.
func unversioned(t *testing.T) string {
	t.Helper()
	marker := "/** " + schema.Current.String() + " */\n"
	if !strings.Contains(schema.Schema, marker) {
		t.Fatalf("schema.Schema lacks %q", marker)
	}
	return strings.Replace(schema.Schema, marker, "", 1)
}

// remoteSpiceDB starts `spicedb serve` on a Postgres datastore without any
// schema, and a client and configuration for it.
func remoteSpiceDB(t *testing.T) (*testutil.SpiceDB, *spicedb.Client, app.Config) {
	t.Helper()
	sdb := testutil.NewSpiceDB(t, testutil.NewEmptyTestDatabase(t))
	client, err := spicedb.Dial(spicedb.RemoteConfig{Endpoint: sdb.Endpoint(), Token: sdb.Token(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	cfg := app.Default()
	cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = sdb.Endpoint(), sdb.Token(), true
	return sdb, client, cfg
}

func installedStamp(t *testing.T, c *spicedb.Client) schema.Stamp {
	t.Helper()
	text, err := c.ReadSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := schema.ParseStamp(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMigrateSpiceDBSchema runs `migrate` with only SpiceDB flags over each
// schema SpiceDB may hold: it writes over none or an older one, leaves the
// current one and a newer one that only expanded, and refuses a newer one
// that contracted away what this version uses.
func TestMigrateSpiceDBSchema(t *testing.T) {
	_, client, cfg := remoteSpiceDB(t)
	migrate := func(t *testing.T) (string, error) {
		var log bytes.Buffer
		err := app.Migrate(t.Context(), cfg, slog.New(slog.NewTextHandler(&log, nil)))
		return log.String(), err
	}

	// First, on the empty SpiceDB: nothing else can make it empty again.
	t.Run("none", func(t *testing.T) {
		if _, err := migrate(t); err != nil {
			t.Fatal(err)
		}
		if got := installedStamp(t, client); got != schema.Current {
			t.Fatalf("schema after migrate is %+v, want %+v", got, schema.Current)
		}
	})

	newerExpanded := schema.Stamp{Version: schema.Version + 1, OldestCompatible: schema.OldestCompatible}
	newerContracted := schema.Stamp{Version: schema.Version + 1, OldestCompatible: schema.Version + 1}
	tests := []struct {
		name      string
		installed string
		want      schema.Stamp
		wantLog   string
		wantErr   error
	}{
		{name: "unversioned", installed: unversioned(t), want: schema.Current, wantLog: "wrote SpiceDB schema"},
		{name: "older", installed: stamped(t, schema.Stamp{Version: schema.Version - 1, OldestCompatible: schema.Version - 1}), want: schema.Current, wantLog: "wrote SpiceDB schema"},
		{name: "current", installed: schema.Schema, want: schema.Current, wantLog: "left as it is"},
		{name: "newer, expanded", installed: stamped(t, newerExpanded), want: newerExpanded, wantLog: "left as it is"},
		{name: "newer, contracted", installed: stamped(t, newerContracted), want: newerContracted, wantErr: authz.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := client.WriteSchema(t.Context(), tt.installed); err != nil {
				t.Fatal(err)
			}
			log, err := migrate(t)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("migrate: %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "roll tenantgate forward") {
				t.Errorf("the refusal does not say what to do: %v", err)
			}
			if !strings.Contains(log, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, log)
			}
			if got := installedStamp(t, client); got != tt.want {
				t.Errorf("schema after migrate is %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSyncRefusesContractedSchema: a schema newer than this tenantgate and
// no longer compatible with it is permanent, so sync fails at once with
// authz.ErrInvalid instead of waiting for a migrate that would not help.
func TestSyncRefusesContractedSchema(t *testing.T) {
	_, client, cfg := remoteSpiceDB(t)
	if err := client.WriteSchema(t.Context(), stamped(t, schema.Stamp{Version: schema.Version + 1, OldestCompatible: schema.Version + 1})); err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = testutil.NewTestDatabase(t)
	cfg.MetricsAddr = freeAddr(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := app.Sync(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), "roll tenantgate forward") {
		t.Fatalf("sync over a contracted schema: %v, want authz.ErrInvalid saying to roll forward", err)
	}
}

// TestServeWaitsForMigrate starts sync and serve processes against a
// SpiceDB nobody has migrated: they wait, not ready, saying to run
// `tenantgate migrate`, and become ready once it ran.
func TestServeWaitsForMigrate(t *testing.T) {
	dbURL := testutil.NewEmptyTestDatabase(t)
	t.Cleanup(func() { dropSlots(t, dbURL) })
	sdb, _, _ := remoteSpiceDB(t)
	testutil.MigrateTenantgate(t, "--database-url", dbURL)
	s, jwksFile := newStack(t, dbURL, []string{treeSeed})
	remote := []string{"--database-url", dbURL, "--spicedb-endpoint", sdb.Endpoint(), "--spicedb-token", sdb.Token(), "--spicedb-insecure"}
	syncProc := testutil.StartTenantgate(t, "sync", append([]string{"sync", "--metrics-addr", freeAddr(t)}, remote...)...)
	addr := freeAddr(t)
	serveProc := testutil.StartTenantgate(t, "serve", s.serveArgs(addr, jwksFile, remote...)...)
	s.baseURLs = []string{"http://" + addr}

	for _, p := range []*testutil.Process{syncProc, serveProc} {
		awaitOutput(t, p, "run tenantgate migrate")
	}
	if resp, err := s.client.Get(s.baseURLs[0] + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("serve is ready over a SpiceDB without tenantgate's schema")
		}
	}

	testutil.MigrateTenantgate(t, remote...)
	s.waitReady(func() error {
		for _, p := range []*testutil.Process{syncProc, serveProc} {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %s", p, p.Output())
			default:
			}
		}
		return nil
	})
	if !s.check("alice", "read", "holding") {
		t.Fatal("alice cannot read holding once migrated")
	}
}

// awaitOutput polls p's output until it holds want.
func awaitOutput(t *testing.T, p *testutil.Process, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.Output(), want) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s never said %q:\n%s", p, want, p.Output())
		case <-p.Done():
			t.Fatalf("%s exited before saying %q:\n%s", p, want, p.Output())
		case <-tick.C:
		}
	}
}
