package gateway

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Config tunes the REST edge. Zero fields take the defaults below.
type Config struct {
	// ServiceToken, when set, is the bearer token of a trusted backend that
	// may check on behalf of any user. Empty disables the service caller.
	ServiceToken string
	// CurrentServiceToken, when set, is asked for the service token on
	// every request instead of ServiceToken, so that a token re-read from
	// a file is rotated without a restart; "" disables the service caller.
	CurrentServiceToken func() string
	// MaxBodyBytes bounds a request body (default 256 KiB).
	MaxBodyBytes int64
	// MaxBulkChecks bounds the items of one bulk check (default 1000).
	MaxBulkChecks int
	// DefaultPageSize is the page size of GET /v1/companies without a
	// limit (default 100); MaxPageSize is the largest limit (default 1000).
	DefaultPageSize int
	MaxPageSize     int
	// RequestTimeout is the deadline of the backend calls made for one
	// request (default 10s).
	RequestTimeout time.Duration
	// ConsistencyWait bounds how long a read that carries a Postgres LSN as
	// its consistency token waits for the sync to apply that position
	// (default 5s, or half of a shorter RequestTimeout); past it the read
	// fails with 503 and Retry-After. It must be shorter than
	// RequestTimeout, whose deadline it runs under, so the backend calls
	// after the wait have time left.
	ConsistencyWait time.Duration
	// PlatformRoles gives callers whose token carries a mapped group a role
	// on every company (for their own checks, lists and explanations, and
	// in management decisions).
	PlatformRoles authz.PlatformRoles
	// RateLimitUser, RateLimitService and RateLimitAddress are requests a
	// second allowed to each user, to the service token, and to each client
	// address before authentication (an IPv6 address counts by its /64),
	// with bursts of twice as many; beyond them a request is answered 429
	// with Retry-After. 0 means no limit.
	RateLimitUser, RateLimitService, RateLimitAddress float64
	// MaxInFlight bounds the API requests served at once; beyond it a
	// request is shed at once with 503 and Retry-After rather than queued.
	// 0 means no bound.
	MaxInFlight int
	// ExternalURL is the gateway's URL as its clients reach it (scheme,
	// host, optional path; no query). The AuthZEN metadata names it as the
	// policy decision point; empty takes the URL a request came to, which
	// behind a proxy is the proxy's view of the gateway, not the client's.
	ExternalURL string
	// MetricsApart takes /metrics off Handler: OpsHandler serves it, on
	// an address of its own, so that the API's port does not show it.
	MetricsApart bool
}

// DefaultRequestTimeout is RequestTimeout when none is set: `tenantgate
// serve` has no flag for it, so it is the deadline of every request served.
const DefaultRequestTimeout = 10 * time.Second

const (
	defaultMaxBodyBytes    = 256 << 10
	defaultMaxBulkChecks   = 1000
	defaultDefaultPageSize = 100
	defaultMaxPageSize     = 1000
	defaultConsistencyWait = 5 * time.Second

	// maxBulkChecksLimit is SpiceDB's CheckBulkPermissions item limit; one
	// bulk request becomes one SpiceDB call.
	maxBulkChecksLimit = 10_000
	// maxPageSizeLimit is SpiceDB's LookupResources page limit; one client
	// page is one SpiceDB page, so a larger page could not be honoured.
	maxPageSizeLimit = 1000
	// minServiceTokenBytes keeps the service token out of guessing range:
	// it can act as any user.
	minServiceTokenBytes = 16
)

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.MaxBulkChecks == 0 {
		c.MaxBulkChecks = defaultMaxBulkChecks
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = defaultDefaultPageSize
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = defaultMaxPageSize
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ConsistencyWait == 0 {
		c.ConsistencyWait = min(defaultConsistencyWait, c.RequestTimeout/2)
	}
	return c
}

// Validate reports every setting that is out of range once the defaults are
// applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.ServiceToken != "" {
		if len(c.ServiceToken) < minServiceTokenBytes {
			errs = append(errs, fmt.Errorf("service token: shorter than %d bytes", minServiceTokenBytes))
		}
		// A bearer token is one run of visible ASCII; anything else could
		// never arrive in an Authorization header and would silently disable
		// the service caller.
		if strings.IndexFunc(c.ServiceToken, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			errs = append(errs, errors.New("service token: must be visible ASCII without spaces"))
		}
	}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("max body bytes: %d is not positive", c.MaxBodyBytes))
	}
	if c.MaxBulkChecks < 1 || c.MaxBulkChecks > maxBulkChecksLimit {
		errs = append(errs, fmt.Errorf("max bulk checks: %d is not in 1..%d", c.MaxBulkChecks, maxBulkChecksLimit))
	}
	if c.MaxPageSize < 1 || c.MaxPageSize > maxPageSizeLimit {
		errs = append(errs, fmt.Errorf("max page size: %d is not in 1..%d", c.MaxPageSize, maxPageSizeLimit))
	}
	if c.DefaultPageSize < 1 || c.DefaultPageSize > c.MaxPageSize {
		errs = append(errs, fmt.Errorf("default page size: %d is not in 1..%d", c.DefaultPageSize, c.MaxPageSize))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request timeout: %v is negative", c.RequestTimeout))
	}
	for name, v := range map[string]float64{"rate limit per user": c.RateLimitUser, "rate limit of the service token": c.RateLimitService, "rate limit per address": c.RateLimitAddress} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s: %v is not a rate (0 or more requests a second)", name, v))
		}
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight: %d is negative", c.MaxInFlight))
	}
	if c.ExternalURL != "" {
		if err := validExternalURL(c.ExternalURL); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case c.ConsistencyWait <= 0:
		errs = append(errs, fmt.Errorf("consistency wait: %v is not positive", c.ConsistencyWait))
	case c.ConsistencyWait >= c.RequestTimeout:
		errs = append(errs, fmt.Errorf("consistency wait: %v must be shorter than the request timeout %v", c.ConsistencyWait, c.RequestTimeout))
	}
	return errors.Join(errs...)
}

// validExternalURL holds the external URL to what AuthZEN asks of a policy
// decision point's identifier: an absolute URL without query or fragment.
// http is accepted for development; the standard wants https.
func validExternalURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("external url: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return fmt.Errorf("external url %q: want an absolute http(s) URL", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("external url %q: must have no query, fragment or user info", raw)
	}
	return nil
}
