package gateway_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// BenchmarkCheckRoute is the gateway's own cost of a check, from request to
// answer, with an Authorizer that answers at once: what the HTTP layer adds
// to the permission index's lookup (docs/benchmarks.md), for /v1/check and
// the same question in AuthZEN's shape, whose nested body takes the decoder's
// token walk instead of its flat fast path.
func BenchmarkCheckRoute(b *testing.B) {
	routes := []struct{ name, path, body string }{
		{"v1", "/v1/check", `{"permission":"read","company":"acme"}`},
		{"authzen", "/access/v1/evaluation", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":"acme"}}`},
	}
	for _, route := range routes {
		b.Run(route.name, func(b *testing.B) {
			fa := &fakeAuthz{allow: map[authz.CheckRequest]bool{{User: "alice", Permission: authz.PermRead, Company: "acme"}: true}, pages: map[string]lookupPage{}}
			gw, err := gateway.New(gateway.Config{}, gateway.Deps{Authn: &fakeAuthn{}, Authz: fa, Companies: &fakeCompanies{byID: map[string]authz.Company{}},
				Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})), Registry: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			h := gw.Handler()
			for b.Loop() {
				r := httptest.NewRequest("POST", route.path, strings.NewReader(route.body))
				r.Header.Set("Authorization", "Bearer "+aliceToken)
				r.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), "true") {
					b.Fatal(rec.Code, rec.Body.String())
				}
				// The fake records every call; keep it from growing.
				fa.checks, fa.consistency, fa.deadlines = fa.checks[:0], fa.consistency[:0], fa.deadlines[:0]
			}
		})
	}
}
