package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/client"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// reply is one answer of the refusing server: a status, and a Retry-After
// when retryAfter is not empty.
type reply struct {
	status     int
	retryAfter string
}

// refusingServer answers the replies in turn, the last one for good, and
// counts the requests. A 200 is a body every call of the tests reads as
// an answer.
func refusingServer(t *testing.T, replies ...reply) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := hits.Add(1)
		r := replies[min(int(n), len(replies))-1]
		if r.retryAfter != "" {
			w.Header().Set("Retry-After", r.retryAfter)
		}
		if r.status == http.StatusOK {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"allowed": true, "consistency_token": "t", "companies": [], "id": "acme", "name": "Acme"}`)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(r.status)
		fmt.Fprintf(w, `{"type": "about:blank", "title": %q, "status": %d}`, http.StatusText(r.status), r.status)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func check(ctx context.Context, c *client.Client) error {
	_, err := c.Check(ctx, client.Check{Permission: client.PermRead, Company: "acme"})
	return err
}

func TestRetries(t *testing.T) {
	t.Parallel()
	var (
		ok        = reply{status: http.StatusOK}
		shed      = reply{status: http.StatusServiceUnavailable, retryAfter: "1"}
		limited   = reply{status: http.StatusTooManyRequests, retryAfter: "1"}
		unsaid    = reply{status: http.StatusServiceUnavailable} // a proxy's 503: no Retry-After
		forbidden = reply{status: http.StatusForbidden}
		internal  = reply{status: http.StatusInternalServerError, retryAfter: "1"}
		later     = reply{status: http.StatusServiceUnavailable, retryAfter: "30"}
		list      = func(ctx context.Context, c *client.Client) error {
			_, err := c.ListCompanies(ctx, client.CompaniesQuery{}, "")
			return err
		}
		create = func(ctx context.Context, c *client.Client) error {
			_, err := c.CreateCompany(ctx, client.NewCompany{Name: "Acme"})
			return err
		}
		noFloor     = client.RetryPolicy{MinPerSecond: 1e-9}
		budgetCalls = 40
	)
	tests := []struct {
		name    string
		policy  client.RetryPolicy
		replies []reply
		call    func(context.Context, *client.Client) error
		// calls are made one after the other, each with timeout (0: none).
		calls   int
		timeout time.Duration
		// minHits and maxHits bound the requests the server saw.
		minHits, maxHits int
		// wantStatus is the last call's: 0 for no error.
		wantStatus int
		// minTook and maxTook bound how long the calls took.
		minTook, maxTook time.Duration
	}{
		{name: "a 503 is retried after its Retry-After", replies: []reply{shed, ok}, call: check,
			minHits: 2, maxHits: 2, minTook: time.Second, maxTook: 1500*time.Millisecond + time.Second},
		{name: "a 429 is retried after its Retry-After", replies: []reply{limited, ok}, call: check,
			minHits: 2, maxHits: 2, minTook: time.Second, maxTook: 1500*time.Millisecond + time.Second},
		{name: "a list is retried", replies: []reply{unsaid, ok}, call: list, minHits: 2, maxHits: 2},
		{name: "attempts are bounded", policy: client.RetryPolicy{MaxAttempts: 3}, replies: []reply{unsaid}, call: check,
			minHits: 3, maxHits: 3, wantStatus: http.StatusServiceUnavailable},
		{name: "a Retry-After over MaxWait is not waited for", policy: client.RetryPolicy{MaxWait: 2 * time.Second}, replies: []reply{later, ok},
			call: check, minHits: 1, maxHits: 1, wantStatus: http.StatusServiceUnavailable, maxTook: time.Second},
		{name: "a Retry-After past the caller's deadline is not waited for", replies: []reply{shed, ok}, call: check, timeout: 500 * time.Millisecond,
			minHits: 1, maxHits: 1, wantStatus: http.StatusServiceUnavailable, maxTook: 500 * time.Millisecond},
		{name: "a write is never retried", replies: []reply{shed, ok}, call: create, minHits: 1, maxHits: 1, wantStatus: http.StatusServiceUnavailable},
		{name: "a 403 is never retried", replies: []reply{forbidden, ok}, call: check, minHits: 1, maxHits: 1, wantStatus: http.StatusForbidden},
		{name: "a 500 is not retried", replies: []reply{internal, ok}, call: check, minHits: 1, maxHits: 1, wantStatus: http.StatusInternalServerError},
		// Each call adds a tenth of a retry to a budget that starts with
		// ten: once those are spent, one call in ten is retried, where
		// every one would be without a budget (120 requests).
		{name: "an exhausted budget stops retries", policy: noFloor, replies: []reply{unsaid}, call: check, calls: budgetCalls,
			minHits: budgetCalls + 10, maxHits: budgetCalls + 10 + budgetCalls/10 + 1, wantStatus: http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, hits := refusingServer(t, tc.replies...)
			tg, err := client.New(srv.URL, client.WithRetries(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			user := tg.As("user-token")
			began := time.Now()
			for range max(tc.calls, 1) {
				ctx, cancel := t.Context(), context.CancelFunc(func() {})
				if tc.timeout > 0 {
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				}
				err = tc.call(ctx, user)
				cancel()
			}
			took := time.Since(began)
			if n := int(hits.Load()); n < tc.minHits || n > tc.maxHits {
				t.Errorf("the server saw %d requests, want %d to %d", n, tc.minHits, tc.maxHits)
			}
			switch e, isGateway := errors.AsType[*client.Error](err); {
			case tc.wantStatus == 0 && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantStatus != 0 && (!isGateway || e.Status != tc.wantStatus):
				t.Errorf("error %v, want the gateway's %d", err, tc.wantStatus)
			}
			if took < tc.minTook || (tc.maxTook > 0 && took > tc.maxTook) {
				t.Errorf("the calls took %v, want %v to %v", took, tc.minTook, tc.maxTook)
			}
		})
	}
}

// TestRetriesEndWithTheContext cancels the caller's context while the
// client waits for a Retry-After: the call ends then, with the answer it
// had, and makes no further request.
func TestRetriesEndWithTheContext(t *testing.T) {
	t.Parallel()
	srv, hits := refusingServer(t, reply{status: http.StatusServiceUnavailable, retryAfter: "5"}, reply{status: http.StatusOK})
	tg, err := client.New(srv.URL, client.WithRetries(client.RetryPolicy{MaxWait: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- check(ctx, tg.As("user-token")) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		if hits.Load() == 0 {
			return fmt.Errorf("no request yet")
		}
		return nil
	})
	began := time.Now()
	cancel()
	err = <-done
	if !client.IsUnavailable(err) {
		t.Errorf("error %v, want the 503 the call had", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("the call ended %v after its context, not at once", took)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the server saw %d requests, want 1", n)
	}
}

func TestRetryPolicyValidation(t *testing.T) {
	t.Parallel()
	for _, p := range []client.RetryPolicy{{MaxAttempts: -1}, {MaxWait: -time.Second}, {Ratio: -0.1}, {MinPerSecond: -1}} {
		if _, err := client.New("http://localhost", client.WithRetries(p)); err == nil {
			t.Errorf("New with %+v: no error", p)
		}
	}
	if _, err := client.New("http://localhost", client.WithRetries(client.RetryPolicy{})); err != nil {
		t.Errorf("New with the default policy: %v", err)
	}
}
