package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// failFastBound is how soon a process must give up on what no retry cures:
// far below --startup-timeout, which the tests leave at its two minutes.
const failFastBound = 30 * time.Second

// TestStartStopsOnWhatNoRetryCures starts sync and serve against setups a
// retry cannot heal: each must end well before --startup-timeout with an
// error wrapping authz.ErrInvalid that names the cause and its fix, instead
// of retrying for ever.
func TestStartStopsOnWhatNoRetryCures(t *testing.T) {
	// A server without logical decoding, migrated as a deployment would be.
	pg := testutil.NewTestPostgres(t, "wal_level = replica")
	ctx := t.Context()
	testutil.NewAppDatabase(t, pg)
	if err := pg.CreateDatabase(ctx, "spicedb", ""); err != nil {
		t.Fatal(err)
	}
	noDecoding := doctorConfig(t)
	noDecoding.DatabaseURL = pg.URL("app")
	// No publication: someone dropped it, or migrate never ran.
	noPublication := doctorConfig(t)
	testutil.ExecSQL(t, noPublication.DatabaseURL, `DROP PUBLICATION tenantgate`)

	// A slot of the sync's name in another database of the server: slot
	// names are the server's.
	slotTaken := doctorConfig(t)
	slotTaken.SyncSlot = "taken_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	elsewhere := testutil.NewTestDatabase(t)
	testutil.ExecSQL(t, elsewhere, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, slotTaken.SyncSlot))
	t.Cleanup(func() {
		testutil.ExecSQL(t, elsewhere, fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, slotTaken.SyncSlot))
	})

	tests := []struct {
		name string
		run  func(context.Context, app.Config, *slog.Logger) error
		cfg  app.Config
		want []string
	}{
		{"sync without wal_level logical", app.Sync, withDatastore(noDecoding, pg.URL("spicedb")), []string{"wal_level", "wal_level = logical"}},
		{"serve without wal_level logical", app.Serve, withListener(t, noDecoding), []string{"wal_level", "wal_level = logical"}},
		{"sync whose slot name another database holds", app.Sync, withDatastore(slotTaken, testutil.NewEmptyTestDatabase(t)), []string{"replication slots", "--sync-slot"}},
		{"serve without the publication", app.Serve, withListener(t, noPublication), []string{"publication", "tenantgate migrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*failFastBound)
			defer cancel()
			started := time.Now()
			err := tt.run(ctx, tt.cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
			took := time.Since(started)
			if !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("ended after %v with %v; want an error wrapping authz.ErrInvalid", took.Round(time.Millisecond), err)
			}
			if took > failFastBound {
				t.Errorf("took %v to give up; want under %v", took.Round(time.Millisecond), failFastBound)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q: %v", w, err)
				}
			}
		})
	}
}

// TestServeEndsWhenTheSyncMeetsWhatNoRetryCures drops the publication
// under a running in-process sync: the stream fails with an error no retry
// cures, and serve must end with it rather than snapshot again for ever.
func TestServeEndsWhenTheSyncMeetsWhatNoRetryCures(t *testing.T) {
	cfg := withListener(t, doctorConfig(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil))) }()
	testutil.AwaitReadyz(t, cfg.Listener.Addr().String(), http.StatusOK, time.Minute)
	testutil.ExecSQL(t, cfg.DatabaseURL, `DROP PUBLICATION tenantgate`,
		`INSERT INTO companies (id, name) VALUES ('after-the-drop', 'x')`)
	select {
	case err := <-done:
		if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), "publication") {
			t.Fatalf("serve ended with %v; want an error wrapping authz.ErrInvalid that names the publication", err)
		}
	case <-time.After(failFastBound):
		t.Fatalf("serve still runs %v after its publication was dropped", failFastBound)
	}
}

func withDatastore(cfg app.Config, datastoreURL string) app.Config {
	cfg.SpiceDBDatastoreURL = datastoreURL
	return cfg
}

// withListener gives serve a listener of its own on a free port, closed
// when the test ends if serve never took it.
func withListener(t *testing.T, cfg app.Config) app.Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cfg.Listener = ln
	return cfg
}
