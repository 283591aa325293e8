package testutil

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// buildTimeout covers a first build of SpiceDB on a cold build cache.
const buildTimeout = 10 * time.Minute

const testSchema = `
definition user {}

definition document {
	relation viewer: user
	permission view = viewer
}`

// Like the Postgres tests, these start clusters of their own rather than
// going through PostgresMain.

func TestSpiceDBKillAndStart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := NewTestPostgres(t)
	if err := pg.CreateDatabase(ctx, "spicedb", ""); err != nil {
		t.Fatal(err)
	}
	sdb := newTestSpiceDB(t, pg.URL("spicedb"))
	endpoint := sdb.Endpoint()

	client := newSpiceDBClient(t, endpoint, sdb.Token())
	if _, err := client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatalf("write schema: %v", err)
	}
	written, err := client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
		Updates: []*v1.RelationshipUpdate{{
			Operation:    v1.RelationshipUpdate_OPERATION_TOUCH,
			Relationship: readmeViewerAlice(),
		}},
	})
	if err != nil {
		t.Fatalf("write relationship: %v", err)
	}
	checkAliceViews(t, client, &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: written.GetWrittenAt()}})

	t.Run("a wrong token is refused", func(t *testing.T) {
		bad := newSpiceDBClient(t, endpoint, "not-"+sdb.Token())
		_, err := bad.ReadSchema(t.Context(), &v1.ReadSchemaRequest{})
		// SpiceDB answers a wrong preshared key with PermissionDenied,
		// and only a missing one with Unauthenticated.
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("read schema with a wrong token: %v, want PermissionDenied", err)
		}
	})

	t.Run("calls fail while killed", func(t *testing.T) {
		began := time.Now()
		if err := sdb.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill took %v", time.Since(began))
		callCtx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := client.ReadSchema(callCtx, &v1.ReadSchemaRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("read schema while killed: %v, want Unavailable", err)
		}
		if err := sdb.Kill(); err != nil {
			t.Errorf("second Kill: %v", err)
		}
	})

	t.Run("data survives a restart", func(t *testing.T) {
		began := time.Now()
		if err := sdb.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Logf("start again took %v", time.Since(began))
		if sdb.Endpoint() != endpoint {
			t.Errorf("endpoint after Start = %s, want %s", sdb.Endpoint(), endpoint)
		}
		if err := sdb.Start(t.Context()); err == nil {
			t.Error("Start of a running server succeeded")
		}
		// A fresh client: the old one may still be backing off from the
		// outage, which is not what this tests.
		client := newSpiceDBClient(t, endpoint, sdb.Token())
		checkAliceViews(t, client, &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}})
	})

	t.Run("Stop is graceful and Close idempotent", func(t *testing.T) {
		ctx := t.Context()
		began := time.Now()
		if err := sdb.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("stop took %v", time.Since(began))
		if err := sdb.Stop(ctx); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if err := sdb.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(sdb.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after Close: %v, want not exist", sdb.dir, err)
		}
		if err := sdb.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := sdb.Start(ctx); err == nil {
			t.Error("Start after Close succeeded")
		}
	})
}

func TestSpiceDBStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	pg := NewTestPostgres(t)
	// A database that does not exist: migrating it fails.
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	sdb, err := StartSpiceDB(ctx, SpiceDBOptions{DatastoreURL: pg.URL("missing")})
	if err == nil {
		sdb.Close(ctx)
		t.Fatal("StartSpiceDB succeeded on a missing database")
	}
	// The server's message comes JSON-escaped in SpiceDB's log.
	for _, want := range []string{"spicedb datastore migrate", "missing", "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBuildSpiceDBCaches(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	began := time.Now()
	bin, err := BuildSpiceDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BuildSpiceDB took %v: %s", time.Since(began), bin)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := filepath.Rel(root, bin); err == nil && !strings.HasPrefix(rel, "..") {
		t.Errorf("binary %s is inside the repository %s", bin, root)
	}

	// As a later test process would: no in-process memory, the file exists.
	began = time.Now()
	again, err := buildSpiceDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("finding the cached binary took %v", took)
	} else {
		t.Logf("cached BuildSpiceDB took %v", took)
	}
	if again != bin {
		t.Errorf("second build at %s, first at %s", again, bin)
	}

	out, err := exec.CommandContext(ctx, bin, "version", "--skip-release-check").CombinedOutput()
	if err != nil {
		t.Fatalf("spicedb version: %v\n%s", err, out)
	}
	version, _, err := spicedbVersion(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), version) {
		t.Errorf("spicedb version printed %q, want %s", out, version)
	}
}

func TestBuildTenantgateHelp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	began := time.Now()
	bin, err := BuildTenantgate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BuildTenantgate took %v: %s", time.Since(began), bin)
	if again, err := BuildTenantgate(ctx); err != nil || again != bin {
		t.Errorf("second BuildTenantgate = %s, %v; want %s from the first", again, err, bin)
	}

	proc, err := StartProcess(ProcessOptions{Path: bin, Args: []string{"--help"}, LogFile: filepath.Join(t.TempDir(), "help.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(ctx); err != nil {
		t.Fatalf("tenantgate --help: %v\n%s", err, proc.Output())
	}
	for _, want := range []string{"serve", "sync", "migrate"} {
		if !strings.Contains(proc.Output(), want) {
			t.Errorf("tenantgate --help does not mention %q:\n%s", want, proc.Output())
		}
	}
}

func TestSpiceDBProcessKillLoop(t *testing.T) {
	t.Parallel()
	// The crash tests kill a process many times over; every kill must
	// leave nothing behind, and every run's output must be its own.
	logFile := filepath.Join(t.TempDir(), "loop.log")
	for i := range 25 {
		proc, err := StartProcess(ProcessOptions{
			Path:    "/bin/sh",
			Args:    []string{"-c", `echo "run $RUN"; exec sleep 60`},
			Env:     []string{"RUN=" + strconv.Itoa(i)},
			LogFile: logFile,
		})
		if err != nil {
			t.Fatal(err)
		}
		// Kill only once the shell has written, so Output has something.
		waitFor(t, func() bool { return strings.Contains(proc.Output(), "run ") })
		if err := proc.Kill(); err != nil {
			t.Fatal(err)
		}
		if got, want := proc.Output(), "run "+strconv.Itoa(i)+"\n"; got != want {
			t.Fatalf("run %d: Output() = %q, want %q", i, got, want)
		}
		if err := proc.Wait(t.Context()); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("run %d: Wait after Kill = %v, want killed", i, err)
		}
		// A reaped child has no /proc entry; a zombie would.
		if _, err := os.Stat("/proc/" + strconv.Itoa(proc.Pid())); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("run %d: pid %d still exists after Kill: %v", i, proc.Pid(), err)
		}
		if err := proc.Kill(); err != nil {
			t.Errorf("run %d: Kill of an exited process: %v", i, err)
		}
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "run "); n != 25 {
		t.Errorf("log has %d runs, want 25:\n%s", n, data)
	}
}

func TestSpiceDBProcessStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	// A shell that exits 0 on SIGTERM stops cleanly; sleep, which dies of
	// it, is reported.
	tests := []struct {
		name    string
		script  string
		wantErr string
	}{
		{name: "handles SIGTERM", script: `trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done`},
		{name: "dies of SIGTERM", script: `echo ready; exec sleep 60`, wantErr: "terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, err := StartProcess(ProcessOptions{Path: "/bin/sh", Args: []string{"-c", tt.script}, LogFile: filepath.Join(dir, tt.name+".log")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proc.Kill() })
			// The trap must be set before the signal arrives.
			waitFor(t, func() bool { return strings.Contains(proc.Output(), "ready") })
			err = proc.Stop(ctx)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Stop: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Stop = %v, want an error mentioning %q", err, tt.wantErr)
			}
			select {
			case <-proc.Done():
			default:
				t.Error("process still running after Stop")
			}
		})
	}
	t.Run("Signal after exit", func(t *testing.T) {
		proc, err := StartProcess(ProcessOptions{Path: "/bin/sh", Args: []string{"-c", "exit 3"}, LogFile: filepath.Join(dir, "exit.log")})
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Wait(ctx); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Wait = %v, want exit status 3", err)
		}
		if err := proc.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("Signal after exit: %v", err)
		}
	})
}

func newTestSpiceDB(t *testing.T, datastoreURL string) *SpiceDB {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	began := time.Now()
	sdb, err := StartSpiceDB(ctx, SpiceDBOptions{
		DatastoreURL: datastoreURL,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartSpiceDB took %v", time.Since(began))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), spicedbTimeout)
		defer cancel()
		if err := sdb.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return sdb
}

func newSpiceDBClient(t *testing.T, endpoint, token string) *authzed.Client {
	t.Helper()
	client, err := authzed.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpcutil.WithInsecureBearerToken(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func readmeViewerAlice() *v1.Relationship {
	return &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: "document", ObjectId: "readme"},
		Relation: "viewer",
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "alice"}},
	}
}

func checkAliceViews(t *testing.T, client *authzed.Client, consistency *v1.Consistency) {
	t.Helper()
	rel := readmeViewerAlice()
	resp, err := client.CheckPermission(t.Context(), &v1.CheckPermissionRequest{
		Consistency: consistency,
		Resource:    rel.GetResource(),
		Permission:  "view",
		Subject:     rel.GetSubject(),
	})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if got := resp.GetPermissionship(); got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("alice view readme = %s, want HAS_PERMISSION", got)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	Eventually(t, 10*time.Second, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition not met")
	})
}
