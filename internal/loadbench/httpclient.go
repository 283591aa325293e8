package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
)

const (
	// maxBulkChecks and maxPageSize are the gateway's limits per call.
	maxBulkChecks = 1000
	maxPageSize   = 1000
	// errorBodyBytes is how much of an unexpected answer an error quotes.
	errorBodyBytes = 512
)

// apiClient calls the REST API (the gateway's, or the floor's one route)
// as the users it holds tokens for.
type apiClient struct {
	base   string
	http   *http.Client
	tokens map[string]string // user -> bearer token
}

func newAPIClient(base string, conns int, tokens map[string]string) *apiClient {
	// One kept-alive connection per client goroutine, as a backend's pool
	// would hold: a new TCP connection per check would measure the kernel.
	transport := &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: 2 * conns, DisableCompression: true}
	return &apiClient{base: base, http: &http.Client{Transport: transport}, tokens: tokens}
}

func (a *apiClient) close() { a.http.CloseIdleConnections() }

// call sends body as JSON (none when nil) and decodes a 200 answer into
// out; any other status is an error.
func (a *apiClient) call(ctx context.Context, method, path, bearer string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, reader)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
		return &statusError{method: method, path: path, status: resp.StatusCode,
			retryAfter: resp.Header.Get("Retry-After"), body: string(bytes.TrimSpace(raw))}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	// Read to the end, so the connection goes back to the pool.
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// statusError is an answer other than 200.
type statusError struct {
	method, path string
	status       int
	// retryAfter is the answer's Retry-After header, as sent.
	retryAfter string
	body       string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.method, e.path, e.status, e.body)
}

func (a *apiClient) token(user string) (string, error) {
	token, ok := a.tokens[user]
	if !ok {
		return "", fmt.Errorf("no token for %s", user)
	}
	return token, nil
}

func (a *apiClient) check(ctx context.Context, c Check) (bool, error) {
	token, err := a.token(c.User)
	if err != nil {
		return false, err
	}
	var out struct {
		Allowed bool `json:"allowed"`
	}
	body := map[string]string{"permission": string(c.Permission), "company": c.Company}
	err = a.call(ctx, http.MethodPost, "/v1/check", token, body, &out)
	return out.Allowed, err
}

// checkBulk asks checks, all about one user, in one call with that user's
// token.
func (a *apiClient) checkBulk(ctx context.Context, checks []Check) ([]bool, error) {
	token, err := a.token(checks[0].User)
	if err != nil {
		return nil, err
	}
	return a.bulk(ctx, token, "", checks)
}

// bulk asks checks with bearer; a subject, with the service token as
// bearer, names the user they are about.
func (a *apiClient) bulk(ctx context.Context, bearer, subject string, checks []Check) ([]bool, error) {
	type item struct {
		Permission authz.Permission `json:"permission"`
		Company    string           `json:"company"`
	}
	body := struct {
		Checks  []item `json:"checks"`
		Subject string `json:"subject,omitempty"`
	}{Subject: subject}
	for _, c := range checks {
		body.Checks = append(body.Checks, item{Permission: c.Permission, Company: c.Company})
	}
	var out struct {
		Results []struct {
			Allowed bool `json:"allowed"`
		} `json:"results"`
	}
	if err := a.call(ctx, http.MethodPost, "/v1/check/bulk", bearer, body, &out); err != nil {
		return nil, err
	}
	allowed := make([]bool, len(out.Results))
	for i, r := range out.Results {
		allowed[i] = r.Allowed
	}
	return allowed, nil
}

// list reads every page of GET /v1/companies.
func (a *apiClient) list(ctx context.Context, user string, p authz.Permission) ([]string, error) {
	token, err := a.token(user)
	if err != nil {
		return nil, err
	}
	var ids []string
	cursor := ""
	for {
		q := url.Values{"permission": {string(p)}, "limit": {strconv.Itoa(maxPageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Companies []struct {
				ID string `json:"id"`
			} `json:"companies"`
			NextCursor string `json:"next_cursor"`
		}
		if err := a.call(ctx, http.MethodGet, "/v1/companies?"+q.Encode(), token, nil, &page); err != nil {
			return nil, err
		}
		for _, c := range page.Companies {
			ids = append(ids, c.ID)
		}
		if page.NextCursor == "" {
			return ids, nil
		}
		cursor = page.NextCursor
	}
}

// ScrapeMetrics sums, per name, every series of the metrics asked for on a
// Prometheus text endpoint; a metric the endpoint does not have is absent
// from the map.
func ScrapeMetrics(ctx context.Context, metricsURL string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", metricsURL, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = line[:i]
			_, value, ok = strings.Cut(line[strings.LastIndexByte(line, '}'):], " ")
		}
		fields := strings.Fields(value)
		if !ok || len(fields) == 0 || !slices.Contains(names, name) {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %q: %w", metricsURL, line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsURL, err)
	}
	return out, nil
}
