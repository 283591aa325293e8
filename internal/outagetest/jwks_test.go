package outagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestJWKSDown takes the identity provider's key set away from a gateway
// (SpiceDB embedded: the key set is the only dependency that goes) while
// the provider rotates a key in, and brings it back.
func TestJWKSDown(t *testing.T) {
	t.Parallel()
	dbURL := testutil.NewTestDatabase(t)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	current, rotated := newIssuer(t), newIssuer(t)
	keys := &keySetServer{}
	keys.publish(t, current)
	srv := httptest.NewServer(keys)
	t.Cleanup(srv.Close)
	px := startProxy(t, srv.Listener.Addr().String())
	g := startGateway(t, "serve", "--database-url", dbURL, "--jwks-url", "http://"+px.addr()+"/jwks.json",
		"--issuer", current.Issuer.Issuer(), "--audience", current.Audience())
	if err := g.decides(current, map[string]bool{"alice": true}); err != nil {
		t.Fatal(err)
	}

	px.refuse()
	keys.publish(t, current, rotated)
	// Cached keys verify for a bounded time (twice the key set's cache
	// TTL, 20 minutes; internal/identity tests the bound): a token the
	// gateway has never seen, signed by one, is decided as before.
	if err := g.decides(current, map[string]bool{"alice": true}); err != nil {
		t.Errorf("a cached key while the key set is down: %v", err)
	}
	// A key the gateway has not seen may be one the provider rotated in:
	// it cannot say whether the token is good, so 503 at once, never an
	// allow nor a 401.
	byRotated := rotated.token("alice")
	if a, err := g.ask(checkAcme, byRotated); err != nil {
		t.Fatal(err)
	} else if err := failedClosed(a); err != nil {
		t.Errorf("a key the gateway has not seen while the key set is down: %v", err)
	}
	// The gateway still verifies every token it could before: it stays in
	// the load balancer.
	if err := g.ready(http.StatusOK); err != nil {
		t.Error(err)
	}

	px.resume()
	// The next refetch, at most a refresh interval after the failed one,
	// finds the rotated key; until then the answer stays 503.
	testutil.Eventually(t, identity.DefaultRefreshInterval+20*time.Second, func() error {
		a, err := g.ask(checkAcme, byRotated)
		if err != nil {
			return err
		}
		if a.status == http.StatusServiceUnavailable {
			if err := failedClosed(a); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("not accepted yet: %v", a)
		}
		if ok, err := allowed(a); err != nil || !ok {
			t.Fatalf("a token of the rotated key once the key set is back: allowed %v, %v", ok, err)
		}
		return nil
	})
	g.alive()
}

// keySetServer serves the key set its issuers publish at /jwks.json.
type keySetServer struct {
	doc atomic.Pointer[[]byte]
}

func (s *keySetServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(*s.doc.Load())
}

// publish makes the key set that of issuers.
func (s *keySetServer) publish(t *testing.T, issuers ...issuer) {
	t.Helper()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, i := range issuers {
		raw, err := i.JWKS()
		if err != nil {
			t.Fatal(err)
		}
		var one struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(raw, &one); err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, one.Keys...)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.doc.Store(&doc)
}
