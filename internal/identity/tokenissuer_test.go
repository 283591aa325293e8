package identity

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestVerifyTokenIssuer(t *testing.T) {
	// The demo's tokens must pass the real verifier with default settings.
	ti, err := testutil.NewTokenIssuer(testIssuer, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := ti.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	v, err := New(t.Context(), urlConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		subject string
		ttl     time.Duration
		extra   map[string]any
		reason  string
	}{
		{"plain", "user-1", time.Hour, nil, ""},
		{"cognito access token", "user-1", time.Hour, map[string]any{"aud": nil, "token_use": "access", "client_id": testAudience}, ""},
		{"expired", "user-1", -time.Hour, nil, "token expired"},
		{"wildcard subject", "*", time.Hour, nil, "subject is not a valid user id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := ti.Mint(tt.subject, tt.ttl, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(t.Context(), token)
			if tt.reason != "" {
				if !errors.Is(err, authz.ErrUnauthenticated) || !strings.HasSuffix(err.Error(), ": "+tt.reason) {
					t.Fatalf("Verify = %+v, %v; want reason %q", p, err, tt.reason)
				}
				return
			}
			if err != nil || p.Subject != tt.subject {
				t.Fatalf("Verify = %+v, %v; want subject %q", p, err, tt.subject)
			}
		})
	}
}
