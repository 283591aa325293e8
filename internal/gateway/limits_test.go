package gateway_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

func remote(addr string) reqOpt { return func(r *http.Request) { r.RemoteAddr = addr } }

// wantLimited checks a 429 problem with a Retry-After of whole seconds.
func wantLimited(t *testing.T, code int, h http.Header) {
	t.Helper()
	if code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", code)
	}
	if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds", h.Get("Retry-After"))
	}
}

func TestRateLimits(t *testing.T) {
	check := `{"permission":"read","company":"acme"}`
	t.Run("a user's burst spends its own budget, nobody else's", func(t *testing.T) {
		// 1 a second, bursts of 2.
		e := buildEnv(t, gateway.Config{RateLimitUser: 1, PlatformRoles: authz.PlatformRoles{"support": authz.RoleViewer}}, nil, allowAlice)
		for range 2 {
			wantStatus(t, e.do("POST", "/v1/check", check), http.StatusOK)
		}
		rec := e.do("POST", "/v1/check", check)
		wantLimited(t, rec.Code, rec.Header())
		// sam, another user, is untouched by alice's burst.
		wantStatus(t, e.do("POST", "/v1/check", check, as(supportToken)), http.StatusOK)
	})
	t.Run("the service token has its own limit", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{ServiceToken: serviceToken, RateLimitUser: 1, RateLimitService: 5}, nil, allowAlice)
		body := `{"subject":"alice","permission":"read","company":"acme"}`
		for range 10 {
			wantStatus(t, e.do("POST", "/v1/check", body, as(serviceToken)), http.StatusOK)
		}
		rec := e.do("POST", "/v1/check", body, as(serviceToken))
		wantLimited(t, rec.Code, rec.Header())
		// Its subjects' own budgets are theirs: alice still has hers.
		wantStatus(t, e.do("POST", "/v1/check", check), http.StatusOK)
	})
	t.Run("an address is limited before its tokens are verified", func(t *testing.T) {
		e := buildEnv(t, gateway.Config{RateLimitAddress: 2}, nil, allowAlice)
		for range 4 {
			wantStatus(t, e.do("POST", "/v1/check", check, as("forged"), remote("203.0.113.7:4000")), http.StatusUnauthorized)
		}
		verified := e.authn.calls.Load()
		rec := e.do("POST", "/v1/check", check, as("forged"), remote("203.0.113.7:4001"))
		wantLimited(t, rec.Code, rec.Header())
		if e.authn.calls.Load() != verified {
			t.Error("a limited request still had its token verified")
		}
		// Another address, and another host's IPv6 /64, are not.
		wantStatus(t, e.do("POST", "/v1/check", check, remote("198.51.100.1:1")), http.StatusOK)
		for range 4 {
			e.do("POST", "/v1/check", check, remote("[2001:db8:1:2::1]:1"))
		}
		rec = e.do("POST", "/v1/check", check, remote("[2001:db8:1:2::ffff]:1"))
		wantLimited(t, rec.Code, rec.Header())
		wantStatus(t, e.do("POST", "/v1/check", check, remote("[2001:db8:1:3::1]:1")), http.StatusOK)
	})
	t.Run("a negative rate is refused", func(t *testing.T) {
		if _, err := gateway.New(gateway.Config{RateLimitUser: -1}, gateway.Deps{Authn: &fakeAuthn{}, Authz: &fakeAuthz{}, Companies: &fakeCompanies{}}); err == nil {
			t.Error("accepted")
		}
	})
}

// blockingAuthz holds every check until release is closed.
type blockingAuthz struct {
	*fakeAuthz
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAuthz) Check(ctx context.Context, req authz.CheckRequest, c authz.Consistency) (bool, string, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeAuthz.Check(ctx, req, c)
}

func TestLoadIsShedAtTheInFlightBound(t *testing.T) {
	fa := &fakeAuthz{allow: map[authz.CheckRequest]bool{{User: "alice", Permission: authz.PermRead, Company: "acme"}: true}}
	b := &blockingAuthz{fakeAuthz: fa, entered: make(chan struct{}, 2), release: make(chan struct{})}
	e := buildEnv(t, gateway.Config{MaxInFlight: 2}, nil, nil)
	gw, err := gateway.New(gateway.Config{MaxInFlight: 2}, gateway.Deps{Authn: e.authn, Authz: b, Companies: e.companies})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			rec := e.do("POST", "/v1/check", `{"permission":"read","company":"acme"}`)
			if rec.Code != http.StatusOK {
				t.Errorf("a request within the bound: status %d", rec.Code)
			}
		})
	}
	<-b.entered
	<-b.entered
	// Both slots are taken: the next request is shed at once, not queued.
	rec := e.do("POST", "/v1/check", `{"permission":"read","company":"acme"}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("past the bound: status %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	// Probes are not API work and are never shed.
	wantStatus(t, e.do("GET", "/healthz", "", as("")), http.StatusOK)
	close(b.release)
	wg.Wait()
	wantStatus(t, e.do("POST", "/v1/check", `{"permission":"read","company":"acme"}`), http.StatusOK)
}
