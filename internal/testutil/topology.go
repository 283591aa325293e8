package testutil

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// StartTenantgate runs the tenantgate binary of this module (BuildTenantgate)
// with args, its output in a log file called after name; it is stopped when
// tb ends.
func StartTenantgate(tb testing.TB, name string, args ...string) *Process {
	tb.Helper()
	bin, err := BuildTenantgate(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	p, err := StartProcess(ProcessOptions{Path: bin, Args: args, LogFile: filepath.Join(tb.TempDir(), name+".log")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

// Topology is what tenantgate runs against in production, as real
// servers: an application database and `spicedb serve` on a Postgres
// datastore. Tests start `tenantgate sync` and `tenantgate serve` on it
// with StartTenantgate and RemoteFlags.
type Topology struct {
	// AppURL is the application database, migrated; DB is a pool on it.
	AppURL  string
	DB      *pgxpool.Pool
	SpiceDB *SpiceDB
	// SyncSlot is the sync's replication slot, a name of this topology's
	// own: slot names are the server's, and tests share one server.
	SyncSlot string
}

// TopologyOptions configure StartTopology.
type TopologyOptions struct {
	// AppURL is a migrated application database; empty makes a new one
	// (NewTestDatabase).
	AppURL string
	// SpiceDBDatastoreURL is SpiceDB's own database, which StartSpiceDB
	// migrates; empty makes a new one (NewEmptyTestDatabase).
	SpiceDBDatastoreURL string
	// Seed is SQL run on the application database before anything reads
	// it, so its rows reach SpiceDB through the sync's snapshot and every
	// later change through the stream.
	Seed string
}

// StartTopology seeds the application database, starts SpiceDB and runs
// `tenantgate migrate` on both; they go away when tb ends.
func StartTopology(tb testing.TB, opts TopologyOptions) *Topology {
	tb.Helper()
	ctx := tb.Context()
	if opts.AppURL == "" {
		opts.AppURL = NewTestDatabase(tb)
	}
	if opts.SpiceDBDatastoreURL == "" {
		opts.SpiceDBDatastoreURL = NewEmptyTestDatabase(tb)
	}
	// Registered before any process starts, so it runs after they have
	// stopped: the sync's persistent slot would keep the database from
	// being dropped.
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := DropReplicationSlots(ctx, opts.AppURL); err != nil {
			tb.Error(err)
		}
	})
	db, err := pgxpool.New(ctx, opts.AppURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	if opts.Seed != "" {
		if _, err := db.Exec(ctx, opts.Seed); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
	sdb, err := StartSpiceDB(ctx, SpiceDBOptions{DatastoreURL: opts.SpiceDBDatastoreURL})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sdb.Close(context.Background()) })
	tp := &Topology{AppURL: opts.AppURL, DB: db, SpiceDB: sdb, SyncSlot: "tenantgate_" + randomSuffix()}
	MigrateTenantgate(tb, tp.RemoteFlags()...)
	return tp
}

// RemoteFlags point a tenantgate command at the application database, its
// sync slot and SpiceDB.
func (tp *Topology) RemoteFlags() []string {
	return []string{"--database-url", tp.AppURL, "--sync-slot", tp.SyncSlot,
		"--spicedb-endpoint", tp.SpiceDB.Endpoint(), "--spicedb-token", tp.SpiceDB.Token(), "--spicedb-insecure"}
}

// MigrateTenantgate runs `tenantgate migrate` with flags to completion, the
// step a deployment runs before any serve or sync: with SpiceDB flags it
// writes the SpiceDB schema, which serve and sync only wait for.
func MigrateTenantgate(tb testing.TB, flags ...string) {
	tb.Helper()
	p := StartTenantgate(tb, "migrate", append([]string{"migrate"}, flags...)...)
	if err := p.Wait(tb.Context()); err != nil {
		tb.Fatalf("tenantgate migrate: %v\n%s", err, p.Output())
	}
}

// NewSpiceDB starts `spicedb serve` on datastoreURL (StartSpiceDB) for the
// rest of tb.
func NewSpiceDB(tb testing.TB, datastoreURL string) *SpiceDB {
	tb.Helper()
	sdb, err := StartSpiceDB(tb.Context(), SpiceDBOptions{DatastoreURL: datastoreURL})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sdb.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return sdb
}
