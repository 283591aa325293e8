package scaletest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

// gateway is `tenantgate serve` running in the test's process, and a client
// for it.
type gateway struct {
	base   string
	client *http.Client
	issuer *devenv.Issuer
}

// startGateway serves dbURL with embedded SpiceDB and the sync in process,
// the default deployment, and returns once it is ready.
func startGateway(t *testing.T, dbURL string) *gateway {
	t.Helper()
	issuer, err := devenv.GenerateIssuer("https://issuer.test", "tenantgate-test")
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := issuer.WriteJWKSFile(jwksFile); err != nil {
		t.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = issuer.Issuer(), issuer.Audience()
	// The test pages faster than the per-user rate limit lets a client;
	// the limit is not what is measured.
	cfg.RateLimitUser = 0
	return &gateway{base: servetest.Start(t, cfg), client: &http.Client{Timeout: time.Minute}, issuer: issuer}
}

func (g *gateway) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := g.issuer.Mint(user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type companyPage struct {
	Companies []struct {
		ID string `json:"id"`
	} `json:"companies"`
	NextCursor string `json:"next_cursor"`
}

// page is one GET /v1/companies of limit companies after cursor as bearer,
// with what it cost this process (see fetch).
func (g *gateway) page(t *testing.T, bearer, cursor string, limit int) (ids []string, next string, cost sample) {
	t.Helper()
	ids, next, cost, err := g.fetch(t.Context(), bearer, cursor, limit)
	if err != nil {
		t.Fatal(err)
	}
	return ids, next, cost
}

// fetch is page for any goroutine. The cost is the time the request took
// and the bytes the process allocated meanwhile, the gateway's and the
// client's together: only what runs concurrently blurs it.
func (g *gateway) fetch(ctx context.Context, bearer, cursor string, limit int) (ids []string, next string, cost sample, err error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/v1/companies?"+q.Encode(), nil)
	if err != nil {
		return nil, "", sample{}, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, "", sample{}, fmt.Errorf("list after %q: %w", cursor, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", sample{}, fmt.Errorf("list after %q: status %d", cursor, resp.StatusCode)
	}
	var p companyPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, "", sample{}, fmt.Errorf("list after %q: %w", cursor, err)
	}
	cost.took = time.Since(start)
	runtime.ReadMemStats(&after)
	cost.bytes = after.TotalAlloc - before.TotalAlloc
	for _, c := range p.Companies {
		ids = append(ids, c.ID)
	}
	return ids, p.NextCursor, cost, nil
}

// metric sums the series of /metrics whose name and labels begin with
// series, such as `tenantgate_index_reads_total{answered_by="spicedb"`.
func (g *gateway) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := g.client.Get(g.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, series) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// waitForIndex waits until the gateway's permission index holds every one
// of want relationships, so that lists are answered by the index, the
// default path, rather than by SpiceDB while it loads.
func (g *gateway) waitForIndex(t *testing.T, want int) {
	t.Helper()
	testutil.Eventually(t, 3*time.Minute, func() error {
		if n := g.metric(t, "tenantgate_index_relationships "); n != float64(want) {
			return fmt.Errorf("index holds %v relationships, want %d", n, want)
		}
		return nil
	})
}
