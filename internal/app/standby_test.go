package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestEmbeddedReplicasOnOneDatastoreAllServe runs two `tenantgate serve`
// on embedded SpiceDB over one Postgres datastore. Their syncs share a
// slot, so one is active and the other its standby; both gateways must be
// ready, reflect a write made through either at once, and keep doing so
// after the active one dies and the standby takes over the stream.
func TestEmbeddedReplicasOnOneDatastoreAllServe(t *testing.T) {
	ctx := t.Context()
	topo := startRemoteTopology(t, ctx, `INSERT INTO companies (id, name) VALUES ('acme', 'ACME');
INSERT INTO company_memberships (user_id, company_id, role) VALUES ('boss@acme.example', 'acme', 'owner');`)
	// The topology's `spicedb serve` migrated the datastore; the gateways
	// run their own SpiceDB on it.
	if err := topo.SpiceDB.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, jwksFile := newStack(t, topo.AppURL, nil)
	replicas := map[string]*testutil.Process{}
	var urls []string
	for _, name := range []string{"serve-a", "serve-b"} {
		addr := freeAddr(t)
		replicas["http://"+addr] = testutil.StartTenantgate(t, name,
			s.serveArgs(addr, jwksFile, "--database-url", topo.AppURL, "--spicedb-datastore-url", topo.pg.URL("spicedb"))...)
		urls = append(urls, "http://"+addr)
		// One after the other, so that the first is the active sync.
		s.baseURLs = urls
		s.waitReady(func() error {
			for base, p := range replicas {
				select {
				case <-p.Done():
					return fmt.Errorf("%s exited: %s", base, p.Output())
				default:
				}
			}
			return nil
		})
	}
	active, standby := urls[0], urls[1]
	for base, want := range map[string]float64{active: 1, standby: 0} {
		if got, err := metric(base, "tenantgate_sync_active"); err != nil || got != want {
			t.Fatalf("%s: tenantgate_sync_active = %v (%v), want %v", base, got, err, want)
		}
	}

	// grantThrough grants a role through the replica at base and checks,
	// through every replica still running, with the write's token.
	boss := s.token("boss@acme.example")
	grantThrough := func(base, user string, readers ...string) {
		t.Helper()
		s.baseURLs = []string{base}
		var granted struct {
			ConsistencyToken string `json:"consistency_token"`
		}
		path := "/v1/companies/acme/members/" + url.PathEscape(user)
		if code := s.do("PUT", path, boss, map[string]string{"role": "viewer"}, &granted); code != http.StatusOK {
			t.Fatalf("grant %s through %s: status %d", user, base, code)
		}
		for _, reader := range readers {
			s.baseURLs = []string{reader}
			code, raw, _ := s.request("POST", "/v1/check", s.token(user),
				map[string]string{"permission": "read", "company": "acme", "consistency_token": granted.ConsistencyToken}, nil)
			if code != http.StatusOK || !bytes.Contains(raw, []byte(`"allowed":true`)) {
				t.Fatalf("check of %s through %s at %s: status %d: %s", user, reader, granted.ConsistencyToken, code, raw)
			}
		}
	}
	grantThrough(standby, "first@example.com", active, standby)
	grantThrough(active, "second@example.com", active, standby)

	if err := replicas[active].Kill(); err != nil {
		t.Fatal(err)
	}
	delete(replicas, active)
	// The grant's token is only applied once the standby has taken over
	// the stream: the check waits for it, within --consistency-wait.
	testutil.Eventually(t, time.Minute, func() error {
		if got, err := metric(standby, "tenantgate_sync_active"); err != nil || got != 1 {
			return fmt.Errorf("the standby has not taken over: tenantgate_sync_active = %v (%v)", got, err)
		}
		return nil
	})
	grantThrough(standby, "third@example.com", standby)
}
