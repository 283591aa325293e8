package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
)

// TestServeMetricsAddr: with --metrics-addr, serve answers /metrics there
// and not on its API port, and /healthz and /readyz on both; without it,
// /metrics stays on the API port. Either way the scrape holds the SpiceDB
// and Postgres call metrics.
func TestServeMetricsAddr(t *testing.T) {
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	for _, tt := range []struct {
		name  string
		apart bool
	}{{"on the API port", false}, {"apart", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var opsAddr string
			s := startEmbeddedStackWith(t, func(cfg *app.Config) {
				if tt.apart {
					opsAddr = freeAddr(t)
					cfg.MetricsAddr = opsAddr
					// The stack's check of the index reads /metrics on
					// the API port, which no longer serves it.
					cfg.Index = false
				}
			}, traceSeed...)
			s.companies("alice", "read", 10) // a query, at least
			api := s.baseURLs[0]
			scrapeFrom := api
			if tt.apart {
				scrapeFrom = "http://" + opsAddr
				if code, _ := get(t, api+"/metrics"); code != http.StatusNotFound {
					t.Errorf("the API port answers /metrics with %d, want 404", code)
				}
				for _, path := range []string{"/healthz", "/readyz"} {
					if code, body := get(t, scrapeFrom+path); code != http.StatusOK {
						t.Errorf("%s on --metrics-addr: %d %s", path, code, body)
					}
				}
			}
			code, metrics := get(t, scrapeFrom+"/metrics")
			if code != http.StatusOK {
				t.Fatalf("/metrics: %d", code)
			}
			for _, want := range []string{
				`tenantgate_http_requests_total{code="200",route="GET /v1/companies"}`,
				`tenantgate_spicedb_request_duration_seconds_count{method="WriteSchema"} 1`,
				`tenantgate_postgres_query_duration_seconds_count{operation="select"}`,
				`tenantgate_check_decisions_total{decision="error",permission="read"} 0`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			for _, path := range []string{"/healthz", "/readyz"} {
				if code, body := get(t, api+path); code != http.StatusOK {
					t.Errorf("%s on the API port: %d %s", path, code, body)
				}
			}
		})
	}
}
