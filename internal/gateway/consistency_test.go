package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// fakeWaiter stands for the sync. With neither token, err nor
// emptyToken set it never sees the position applied and waits until its
// context ends, as a stuck sync would.
type fakeWaiter struct {
	token      string
	err        error
	emptyToken bool

	mu        sync.Mutex
	asked     []string
	deadlines []time.Duration
}

func (f *fakeWaiter) AwaitApplied(ctx context.Context, pos authz.Position) (string, error) {
	f.mu.Lock()
	f.asked = append(f.asked, pos.String())
	if d, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, time.Until(d))
	}
	f.mu.Unlock()
	switch {
	case f.err != nil:
		return "", f.err
	case f.emptyToken:
		return "", nil
	case f.token == "":
		<-ctx.Done()
		return "", fmt.Errorf("%w: sync has not applied lsn %s yet", authz.ErrUnavailable, pos.LSN)
	}
	return f.token, nil
}

func (f *fakeWaiter) lsns() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

// newWaitsEnv is newEnv with fresh as the gateway's Waits (nil:
// none). Everything alice could ask is allowed, so a read answered without
// waiting would show as allowed:true.
func newWaitsEnv(t *testing.T, cfg gateway.Config, fresh gateway.AppliedWaiter) *env {
	t.Helper()
	return buildEnv(t, cfg, fresh, func(e *env) {
		for _, p := range authz.Permissions {
			e.authz.allow[authz.CheckRequest{User: "alice", Permission: p, Company: "a"}] = true
		}
		e.authz.pages[""] = lookupPage{ids: []string{"a"}}
		e.companies.byID["a"] = authz.Company{ID: "a", Name: "A"}
	})
}

// tokenReads are the reads that take a consistency token, each carrying
// token in the body where it has one and in the header otherwise.
func tokenReads(token string) []struct {
	name, method, target, body string
	opts                       []reqOpt
} {
	return []struct {
		name, method, target, body string
		opts                       []reqOpt
	}{
		{"check body", "POST", "/v1/check", `{"permission":"read","company":"a","consistency_token":"` + token + `"}`, nil},
		{"check header", "POST", "/v1/check", `{"permission":"read","company":"a"}`, []reqOpt{header("Consistency-Token", token)}},
		{"bulk body", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"}],"consistency_token":"` + token + `"}`, nil},
		{"bulk header", "POST", "/v1/check/bulk", `{"checks":[{"permission":"read","company":"a"}]}`, []reqOpt{header("Consistency-Token", token)}},
		{"list companies", "GET", "/v1/companies", "", []reqOpt{header("Consistency-Token", token)}},
		{"permissions", "GET", "/v1/companies/a/permissions", "", []reqOpt{header("Consistency-Token", token)}},
	}
}

func TestConsistencyTokenKinds(t *testing.T) {
	const applied = "zed-applied"
	tests := []struct {
		name, token string
		// wantLSN is the position the gateway waits for ("" for none);
		// wantZed what the Authorizer then gets; wantStatus 400 for a
		// refused token.
		wantLSN, wantZed string
		wantStatus       int
	}{
		{name: "none", token: "", wantZed: ""},
		{name: "zedtoken", token: "Gh8KEzE3OTU2MDg0Mjg5NDUyOTYwODgSCGU1MjVmZDY5", wantZed: "Gh8KEzE3OTU2MDg0Mjg5NDUyOTYwODgSCGU1MjVmZDY5"},
		{name: "zedtoken with slash and plus", token: "GhUKEz/+E3OTU2MDg0Mj==", wantZed: "GhUKEz/+E3OTU2MDg0Mj=="},
		{name: "slash but not hex", token: "zed/abc", wantZed: "zed/abc"},
		{name: "two slashes", token: "0/1/2", wantZed: "0/1/2"},
		{name: "signed half", token: "-1/0", wantZed: "-1/0"},
		{name: "lsn", token: "0/16B3748", wantLSN: "0/16B3748", wantZed: applied},
		{name: "lsn lower case", token: "1a/b3748", wantLSN: "1a/b3748", wantZed: applied},
		{name: "largest lsn", token: "FFFFFFFF/FFFFFFFF", wantLSN: "FFFFFFFF/FFFFFFFF", wantZed: applied},
		{name: "position", token: "0/16B3748@1", wantLSN: "0/16B3748@1", wantZed: applied},
		{name: "largest position", token: "FFFFFFFF/FFFFFFFF@4294967295", wantLSN: "FFFFFFFF/FFFFFFFF@4294967295", wantZed: applied},
		{name: "lsn half too long", token: "123456789/0", wantStatus: http.StatusBadRequest},
		{name: "lsn without low half", token: "0/", wantStatus: http.StatusBadRequest},
		{name: "lsn without high half", token: "/16B3748", wantStatus: http.StatusBadRequest},
		{name: "only a slash", token: "/", wantStatus: http.StatusBadRequest},
		// '@' is in no ZedToken: whatever has one was meant as a position.
		{name: "position without timeline", token: "0/1@", wantStatus: http.StatusBadRequest},
		{name: "timeline zero", token: "0/1@0", wantStatus: http.StatusBadRequest},
		{name: "negative timeline", token: "0/1@-1", wantStatus: http.StatusBadRequest},
		{name: "timeline after a space", token: "0/1@ 2", wantStatus: http.StatusBadRequest},
		{name: "timeline beyond 32 bits", token: "0/1@99999999999", wantStatus: http.StatusBadRequest},
		{name: "two timelines", token: "0/1@2@3", wantStatus: http.StatusBadRequest},
		{name: "timeline after no lsn", token: "zed@1", wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, read := range tokenReads(tt.token) {
				t.Run(read.name, func(t *testing.T) {
					fresh := &fakeWaiter{token: applied}
					e := newWaitsEnv(t, gateway.Config{}, fresh)
					rec := e.do(read.method, read.target, read.body, read.opts...)
					if tt.wantStatus != 0 {
						wantStatus(t, rec, tt.wantStatus)
						if !strings.Contains(problemDetail(t, rec), "WAL position") {
							t.Errorf("detail %q does not say what is wrong", problemDetail(t, rec))
						}
						if e.authz.calls() != 0 || len(fresh.lsns()) != 0 {
							t.Errorf("a refused token reached the backends")
						}
						return
					}
					wantStatus(t, rec, http.StatusOK)
					// The position waited for, whatever the case of its hex digits.
					if asked := fresh.lsns(); tt.wantLSN == "" && len(asked) != 0 || tt.wantLSN != "" && (len(asked) != 1 || !strings.EqualFold(asked[0], tt.wantLSN)) {
						t.Errorf("waited for %q, want %q", asked, tt.wantLSN)
					}
					var got []authz.Consistency
					got = append(got, e.authz.consistency...)
					for _, l := range e.authz.lookups {
						got = append(got, l.cons)
					}
					if len(got) != 1 || got[0].AtLeastAsFresh != tt.wantZed {
						t.Errorf("authorizer got %+v, want one read at %q", got, tt.wantZed)
					}
				})
			}
		})
	}
}

func TestLSNTokenNotAppliedInTimeIs503(t *testing.T) {
	const wait = 150 * time.Millisecond
	tests := []struct {
		name  string
		fresh gateway.AppliedWaiter
	}{
		{"the sync never gets there", &fakeWaiter{}},
		{"no sync to wait for", nil},
		// The sync's state could not be read: an error of any kind is 503,
		// never the caller's fault.
		{"the wait fails", &fakeWaiter{err: fmt.Errorf("%w: bad slot name", authz.ErrInvalid)}},
		{"the wait answers without a token", &fakeWaiter{emptyToken: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, read := range tokenReads("0/16B3748") {
				t.Run(read.name, func(t *testing.T) {
					e := newWaitsEnv(t, gateway.Config{ConsistencyWait: wait}, tt.fresh)
					started := time.Now()
					// do checks the problem document and that it holds no
					// allowed:true.
					rec := e.do(read.method, read.target, read.body, read.opts...)
					elapsed := time.Since(started)
					wantStatus(t, rec, http.StatusServiceUnavailable)
					if rec.Header().Get("Retry-After") == "" {
						t.Error("503 without Retry-After")
					}
					if e.authz.calls() != 0 {
						t.Errorf("the authorizer was asked %d times before the write was applied", e.authz.calls())
					}
					if f, ok := tt.fresh.(*fakeWaiter); ok && f.token == "" && f.err == nil && !f.emptyToken {
						if elapsed < wait || elapsed > wait+2*time.Second {
							t.Errorf("answered after %v, want about %v", elapsed, wait)
						}
					}
				})
			}
		})
	}
}

func TestLSNWaitIsBoundedByConsistencyWait(t *testing.T) {
	fresh := &fakeWaiter{token: "zed-applied"}
	e := newWaitsEnv(t, gateway.Config{ConsistencyWait: 2 * time.Second}, fresh)
	wantStatus(t, e.do("POST", "/v1/check", `{"permission":"read","company":"a","consistency_token":"0/1"}`), http.StatusOK)
	if len(fresh.deadlines) != 1 || fresh.deadlines[0] > 2*time.Second || fresh.deadlines[0] < time.Second {
		t.Errorf("wait deadlines %v, want one of about 2s", fresh.deadlines)
	}
	// The backend call after the wait keeps the request's own deadline.
	if len(e.authz.deadlines) != 1 || e.authz.deadlines[0] < 5*time.Second {
		t.Errorf("authorizer deadlines %v, want the request's 10s", e.authz.deadlines)
	}
}

// TestLSNTokenAheadOfTheDatabaseIs400: the one failure to wait that is the
// caller's: a position no write answered with.
func TestLSNTokenAheadOfTheDatabaseIs400(t *testing.T) {
	for _, read := range tokenReads("FFFFFFFF/FFFFFFFF") {
		t.Run(read.name, func(t *testing.T) {
			fresh := &fakeWaiter{err: fmt.Errorf("%w: the database is at 0/1", gateway.ErrPositionAhead)}
			e := newWaitsEnv(t, gateway.Config{}, fresh)
			rec := e.do(read.method, read.target, read.body, read.opts...)
			wantStatus(t, rec, http.StatusBadRequest)
			if detail := problemDetail(t, rec); !strings.Contains(detail, "ahead of the database") {
				t.Errorf("detail %q does not say the token is ahead of the database", detail)
			}
			if e.authz.calls() != 0 {
				t.Errorf("the authorizer was asked %d times", e.authz.calls())
			}
		})
	}
}

// TestPositionOfAnEarlierTimelineIs400: a token from before a failover or
// a restore is the caller's to drop, and the answer says so.
func TestPositionOfAnEarlierTimelineIs400(t *testing.T) {
	for _, read := range tokenReads("0/16B3748@1") {
		t.Run(read.name, func(t *testing.T) {
			fresh := &fakeWaiter{err: fmt.Errorf("wait: %w", &gateway.EarlierTimelineError{Timeline: 2})}
			e := newWaitsEnv(t, gateway.Config{}, fresh)
			rec := e.do(read.method, read.target, read.body, read.opts...)
			wantStatus(t, rec, http.StatusBadRequest)
			detail := problemDetail(t, rec)
			for _, want := range []string{"earlier database history", "timeline 1", "timeline 2 since a failover or restore", "may have been lost", "without a consistency token"} {
				if !strings.Contains(detail, want) {
					t.Errorf("detail %q does not say %q", detail, want)
				}
			}
			if e.authz.calls() != 0 {
				t.Errorf("the authorizer was asked %d times", e.authz.calls())
			}
		})
	}
}
