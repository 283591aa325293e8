package client_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/client"
	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

// The tests run the client against a real `tenantgate serve`, in this
// process, over a throwaway database: what they check is the client's
// reading of the gateway as it is, not of a fake.

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

const serviceToken = "client-test-service-token-0123456789"

// treeSeed is the application's data as the gateway starts on it: a tree
// under holding (with an ID a URL path must escape), a separate root, and
// five roots pat can read, for paging.
const treeSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('holding', 'Holding', NULL),
  ('europe', 'Europe', 'holding'),
  ('france', 'France', 'europe'),
  ('paris', 'Paris', 'france'),
  ('zürich/sub', 'Zürich', 'europe'),
  ('globex', 'Globex', NULL),
  ('shop-1', 'Shop 1', NULL), ('shop-2', 'Shop 2', NULL), ('shop-3', 'Shop 3', NULL),
  ('shop-4', 'Shop 4', NULL), ('shop-5', 'Shop 5', NULL);
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('alice', 'holding', 'owner', 'active'),
  ('bob', 'holding', 'viewer', 'active'),
  ('bob', 'france', 'admin', 'active'),
  ('carol', 'europe', 'editor', 'active'),
  ('erin', 'paris', 'viewer', 'inactive'),
  ('pat', 'shop-1', 'viewer', 'active'), ('pat', 'shop-2', 'viewer', 'active'),
  ('pat', 'shop-3', 'viewer', 'active'), ('pat', 'shop-4', 'viewer', 'active'),
  ('pat', 'shop-5', 'viewer', 'active');`

// gateway is a running tenantgate and the issuer of the tokens it trusts.
type gateway struct {
	url    string
	issuer *devenv.Issuer
}

// startGateway starts `tenantgate serve` (embedded SpiceDB, the sync
// in-process) over a new database holding seed, and returns once it is
// ready. Rows of seed are written before the sync starts, so they are in
// the snapshot every answer starts from.
func startGateway(t *testing.T, seed string) *gateway {
	t.Helper()
	dbURL := testutil.NewTestDatabase(t)
	seedDatabase(t, dbURL, seed)
	g := &gateway{issuer: newIssuer(t)}
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = writeJWKS(t, g.issuer)
	cfg.Issuer, cfg.Audience = g.issuer.Issuer(), g.issuer.Audience()
	cfg.ServiceToken = serviceToken
	g.url = servetest.Start(t, cfg)
	return g
}

func seedDatabase(t *testing.T, dbURL, seed string) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func newIssuer(t *testing.T) *devenv.Issuer {
	t.Helper()
	issuer, err := devenv.GenerateIssuer("https://issuer.test", "tenantgate-client-test")
	if err != nil {
		t.Fatalf("token issuer: %v", err)
	}
	return issuer
}

// writeJWKS writes the issuer's key set where the gateway reads it.
func writeJWKS(t *testing.T, issuer *devenv.Issuer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	jwks, err := issuer.JWKS()
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// token mints a token of user that the gateway trusts.
func (g *gateway) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := g.issuer.Mint(user, time.Hour, nil)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// client is a client of the gateway with opts and no bearer of its own.
func (g *gateway) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(g.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// as is a client calling as user.
func (g *gateway) as(t *testing.T, user string) *client.Client {
	t.Helper()
	return g.client(t).As(g.token(t, user))
}

// service is a client calling with the service token.
func (g *gateway) service(t *testing.T) *client.Client {
	t.Helper()
	return g.client(t, client.WithServiceToken(serviceToken))
}

// closedURL is the URL of a port nobody listens on: a gateway that is down.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// hangingServer accepts requests and never answers them: a gateway that
// hangs. A handler returns once its client has gone (the body is read
// first, or the server would not notice), or when the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv
}
