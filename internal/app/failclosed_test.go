package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/spicedb"
	"github.com/tenantgate/tenantgate/internal/spicedb/spicedbtest"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// spicedbOnlyGateway serves the real gateway over a real embedded SpiceDB
// that holds member's membership, and Postgres that holds its company, with
// no sync: stopping sdb shows how every answer fails. The service token is
// serviceToken; userToken is the member's own.
func spicedbOnlyGateway(t *testing.T, ctx context.Context, member authz.Membership) (srv *httptest.Server, sdb *spicedb.Embedded, userToken string) {
	t.Helper()
	sdb = spicedbtest.NewEmbedded(t)
	rel, ok := authz.MembershipRelationship(member)
	if !ok {
		t.Fatal("an active membership has no relationship")
	}
	if _, err := sdb.Write(ctx, []authz.Update{{Op: authz.OpTouch, Rel: rel}}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, testutil.NewTestDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.UpsertCompany(ctx, authz.Company{ID: member.CompanyID, Name: member.CompanyID}); err != nil {
		t.Fatal(err)
	}
	issuer, err := devenv.GenerateIssuer("https://issuer.test", "aud")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := issuer.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.New(ctx, identity.Config{JWKSFile: jwksFile, Issuer: "https://issuer.test", Audience: "aud"})
	if err != nil {
		t.Fatal(err)
	}
	// No Waits: no sync follows this gateway.
	gw, err := gateway.New(gateway.Config{RequestTimeout: 5 * time.Second, ServiceToken: serviceToken},
		gateway.Deps{Authn: verifier, Authz: sdb, Companies: st, Users: sdb, Explainer: sdb.Client})
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	if userToken, err = issuer.Mint(member.UserID, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	return srv, sdb, userToken
}

// TestChecksFailClosedWhenSpiceDBCannotAnswer wires the real gateway to a
// real embedded SpiceDB, then stops SpiceDB: every answer must become a 503
// problem, never an allow.
func TestChecksFailClosedWhenSpiceDBCannotAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, sdb, token := spicedbOnlyGateway(t, ctx, authz.Membership{UserID: "alice", CompanyID: "acme", Role: authz.RoleOwner, Status: authz.StatusActive})
	requests := []struct{ method, path, body string }{
		{"POST", "/v1/check", `{"permission":"read","company":"acme"}`},
		{"POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"acme"}]}`},
		{"GET", "/v1/companies?permission=read", ""},
		{"GET", "/v1/companies/acme/permissions", ""},
	}
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type") + " " + string(raw)
	}
	for _, r := range requests {
		if code, body := call(r.method, r.path, r.body); code != http.StatusOK || !granted(body) {
			t.Fatalf("%s %s with SpiceDB up = %d %s, want 200 with an allow", r.method, r.path, code, body)
		}
	}
	if err := sdb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range requests {
		code, body := call(r.method, r.path, r.body)
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "application/problem+json") {
			t.Errorf("%s %s with SpiceDB down = %d %s, want a 503 problem", r.method, r.path, code, body)
		}
		if granted(body) {
			t.Errorf("%s %s with SpiceDB down leaked an answer: %s", r.method, r.path, body)
		}
	}
}

// granted reports whether an answer carries any allow or listed company.
func granted(body string) bool {
	return strings.Contains(body, "true") || strings.Contains(body, `"id":"acme"`)
}
