package startuptest

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// rotationBound is how long a process may take to use a secret file's new
// content: a few of its polls.
const rotationBound = 30 * time.Second

// TestServiceTokenFileRotates replaces the service token in its file: the
// running gateway accepts the new token and refuses the old one.
func TestServiceTokenFileRotates(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	oldToken, newToken := rand.Text(), rand.Text()
	file := filepath.Join(t.TempDir(), "service-token")
	writeSecret(t, file, oldToken)
	gw := start(t, "serve", append([]string{"serve", "--http-addr", freeAddr(t), "--database-url", seededDatabase(t),
		"--service-token-file", file}, iss.fileFlags(t)...)...)
	gw.awaitReady()
	if got := serviceCheck(t, gw.addr, oldToken); got != http.StatusOK {
		t.Fatalf("the service token of the file answered %d, want 200", got)
	}

	writeSecret(t, file, newToken)
	testutil.Eventually(t, rotationBound, func() error {
		gw.alive()
		return statusIs(serviceCheck(t, gw.addr, newToken), http.StatusOK, "the new service token")
	})
	if got := serviceCheck(t, gw.addr, oldToken); got != http.StatusUnauthorized {
		t.Errorf("the old service token answered %d after the rotation, want 401", got)
	}
	if strings.Contains(gw.Output(), oldToken) || strings.Contains(gw.Output(), newToken) {
		t.Error("a service token was logged")
	}
}

// TestSpiceDBTokenFileRotates rotates SpiceDB's preshared key the way
// docs/operations.md says: SpiceDB accepts the old key and the new one,
// and the key file of a running gateway and sync changes from the old to
// the new; both keep working.
func TestSpiceDBTokenFileRotates(t *testing.T) {
	t.Parallel()
	newKey := rand.Text()
	appURL := seededDatabase(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testutil.DropReplicationSlots(ctx, appURL); err != nil {
			t.Error(err)
		}
	})
	sdb, err := testutil.StartSpiceDB(t.Context(), testutil.SpiceDBOptions{
		DatastoreURL: testutil.NewEmptyTestDatabase(t), ExtraKeys: []string{newKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close(context.Background()) })
	testutil.MigrateTenantgate(t, "--database-url", appURL,
		"--spicedb-endpoint", sdb.Endpoint(), "--spicedb-token", sdb.Token(), "--spicedb-insecure")
	file := filepath.Join(t.TempDir(), "spicedb-token")
	writeSecret(t, file, sdb.Token())
	flags := []string{"--database-url", appURL, "--spicedb-endpoint", sdb.Endpoint(), "--spicedb-insecure", "--spicedb-token-file", file}
	iss := newIssuer(t)
	sync := start(t, "sync", append([]string{"sync", "--metrics-addr", freeAddr(t)}, flags...)...)
	gw := start(t, "serve", append(append([]string{"serve", "--http-addr", freeAddr(t)}, flags...), iss.fileFlags(t)...)...)
	sync.awaitReady()
	gw.awaitReady()
	gw.allows(iss, "alice", true)

	writeSecret(t, file, newKey)
	for _, p := range []*proc{sync, gw} {
		p.awaitLog("secret file changed; using its new content")
	}
	sync.awaitReady()
	gw.awaitReady()
	gw.allows(iss, "alice", true)
	gw.allows(iss, "mallory", false)
}

// writeSecret replaces path with content and a newline, in one rename, as
// Kubernetes updates a mounted secret.
func writeSecret(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serviceCheck asks, with a service token, whether alice may read acme.
func serviceCheck(t *testing.T, addr, token string) int {
	t.Helper()
	return call(t, addr, token, "POST", "/v1/check", `{"permission":"read","company":"acme","subject":"alice"}`).status
}
