package consoletest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }

const (
	audience     = "tenantgate-console-test"
	oidcClientID = "tenantgate-console"
	// tokenTTL outlives any test.
	tokenTTL = time.Hour
)

type company struct{ id, name, parent string }

type membership struct{ user, company, role string }

// gateway is a `tenantgate serve` with its console over a seeded database.
// It trusts the tokens of idp, a test identity provider that signs every
// user in as the one it was started for.
type gateway struct {
	url string
	idp *testutil.OIDCProvider
}

// startGateway seeds a new database with companies (parents first) and
// memberships, as the application would write them, then runs the SQL
// statements of more, and serves it with configure's changes until t ends.
func startGateway(t *testing.T, oidcUser string, companies []company, memberships []membership, configure func(*app.Config), more ...string) *gateway {
	t.Helper()
	dbURL := testutil.NewTestDatabase(t)
	seed(t, dbURL, companies, memberships, more)
	idp := testutil.NewOIDCProvider(t, oidcClientID, audience, oidcUser)
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := idp.Issuer.WriteJWKSFile(jwksFile); err != nil {
		t.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = idp.URL, audience
	configure(&cfg)
	return &gateway{url: servetest.Start(t, cfg), idp: idp}
}

// seed writes with bound parameters: the hostile IDs and names of the XSS
// test go in as they are.
func seed(t *testing.T, dbURL string, companies []company, memberships []membership, more []string) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, c := range companies {
		var parent *string
		if c.parent != "" {
			parent = &c.parent
		}
		if _, err := pool.Exec(ctx, "INSERT INTO companies (id, name, parent_id) VALUES ($1, $2, $3)", c.id, c.name, parent); err != nil {
			t.Fatalf("seed company %q: %v", c.id, err)
		}
	}
	for _, m := range memberships {
		if _, err := pool.Exec(ctx, "INSERT INTO company_memberships (user_id, company_id, role) VALUES ($1, $2, $3)", m.user, m.company, m.role); err != nil {
			t.Fatalf("seed membership of %q in %q: %v", m.user, m.company, err)
		}
	}
	for _, sql := range more {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("seed: %v\n%s", err, sql)
		}
	}
}

// token is a bearer token for user that the gateway accepts.
func (g *gateway) token(t *testing.T, user string) string {
	t.Helper()
	token, err := g.idp.Issuer.Mint(user, tokenTTL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return token
}
