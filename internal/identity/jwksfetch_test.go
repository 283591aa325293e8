package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestJWKSURLMustBeHTTPSUnlessLoopback(t *testing.T) {
	tests := []struct {
		url   string
		valid bool
	}{
		{"https://issuer.example/jwks", true},
		{"https://203.0.113.7/jwks", true},
		{"http://127.0.0.1:8081/jwks", true},
		{"http://127.9.8.7/jwks", true},
		{"http://[::1]:8081/jwks", true},
		{"http://[::ffff:127.0.0.1]/jwks", true},
		{"http://localhost:8081/jwks", true},
		{"http://LocalHost/jwks", true},
		{"http://issuer.example/jwks", false},
		{"http://devissuer:8081/jwks", false},
		{"http://10.0.0.1/jwks", false},
		{"http://[2001:db8::1]/jwks", false},
		{"http://0.0.0.0/jwks", false},
		{"http://localhost.issuer.example/jwks", false},
		{"http://127.0.0.1.nip.io/jwks", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := urlConfig(tt.url).Validate()
			if tt.valid {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), "must use https") {
				t.Fatalf("Validate = %v, want ErrInvalid saying the URL must use https", err)
			}
		})
	}

	// And a real loopback issuer over plain http still works end to end.
	key := newECKey(t, "a")
	srv := newJWKSServer(t, publicJWKS(t, key))
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want http://127.0.0.1", srv.URL)
	}
	v, err := New(t.Context(), urlConfig(srv.URL))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := v.Verify(t.Context(), key.sign(t, claimsAt(time.Now(), nil), nil)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// issuerSite serves a JWKS at /jwks, counting the fetches, and answers
// every other path with a redirect to whatever redirect returns for it.
type issuerSite struct {
	*httptest.Server
	fetches atomic.Int64
}

func newIssuerSite(t *testing.T, tls bool, jwks []byte, redirect func(r *http.Request) string) *issuerSite {
	t.Helper()
	site := &issuerSite{}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		site.fetches.Add(1)
		_, _ = w.Write(jwks)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, redirect(r), http.StatusFound)
	})
	site.Server = httptest.NewUnstartedServer(mux)
	if tls {
		site.StartTLS()
	} else {
		site.Start()
	}
	t.Cleanup(site.Close)
	return site
}

func TestJWKSRedirects(t *testing.T) {
	jwks := publicJWKS(t, newECKey(t, "a"))
	elsewhere := newIssuerSite(t, false, jwks, func(*http.Request) string { return "/jwks" })
	site := newIssuerSite(t, false, jwks, func(r *http.Request) string {
		switch {
		case r.URL.Path == "/same-host":
			return "/jwks"
		case r.URL.Path == "/same-host-twice":
			return "/same-host"
		case r.URL.Path == "/other-port":
			return elsewhere.URL + "/jwks"
		case r.URL.Path == "/other-host-name":
			// The same socket under another name is another host: the
			// check is about what was configured, not where it lands.
			return "http://" + strings.Replace(r.Host, "127.0.0.1", "localhost", 1) + "/jwks"
		case strings.HasPrefix(r.URL.Path, "/loop"):
			return r.URL.Path + "x"
		}
		return "/nowhere"
	})
	tlsSite := newIssuerSite(t, true, jwks, func(r *http.Request) string {
		if r.URL.Path == "/to-http" {
			return elsewhere.URL + "/jwks"
		}
		return "/jwks"
	})
	refusing := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("the caller's own policy says no")
	}}

	tests := []struct {
		name   string
		url    string
		client *http.Client
		reason string // empty: New succeeds through the redirects
	}{
		{"same host", site.URL + "/same-host", nil, ""},
		{"same host, two hops", site.URL + "/same-host-twice", nil, ""},
		{"same https host", tlsSite.URL + "/same-host", tlsSite.Client(), ""},
		{"other port", site.URL + "/other-port", nil, "refused"},
		{"other host name", site.URL + "/other-host-name", nil, "refused"},
		{"https to http", tlsSite.URL + "/to-http", tlsSite.Client(), "refused"},
		{"endless loop on the same host", site.URL + "/loop", nil, "stopped after 10 redirects"},
		{"caller's policy still applies", site.URL + "/same-host", refusing, "the caller's own policy says no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var callerPolicy string
			if tt.client != nil {
				callerPolicy = fmt.Sprintf("%p", tt.client.CheckRedirect)
			}
			cfg := urlConfig(tt.url)
			cfg.HTTPClient = tt.client
			elsewhereBefore := elsewhere.fetches.Load()
			_, err := New(t.Context(), cfg)
			if tt.client != nil && fmt.Sprintf("%p", tt.client.CheckRedirect) != callerPolicy {
				t.Error("New changed the redirect policy of the caller's HTTP client")
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, authz.ErrUnavailable) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("New = %v, want ErrUnavailable mentioning %q", err, tt.reason)
			}
			if got := elsewhere.fetches.Load() - elsewhereBefore; got != 0 {
				t.Fatalf("the JWKS elsewhere was fetched %d times through a refused redirect", got)
			}
		})
	}
}

// promisedInterval is what the README promises with the default
// configuration: at most one JWKS fetch per this long however many unknown
// kids arrive, and a rotated-in key accepted within it. It is spelled out
// rather than taken from DefaultRefreshInterval so that the test checks the
// promise, not whatever the constant says.
const promisedInterval = 10 * time.Second

// floodFor is how long TestUnknownKIDFlood floods: past one full interval,
// so the limit is seen to hold across it.
const floodFor = 12 * time.Second

// flood sends tokens with random unknown kids until ctx ends and records
// what came back. Its goroutines cannot fail the test, so it keeps what
// the test checks afterwards.
type flood struct {
	mu         sync.Mutex
	requests   int
	maxLatency time.Duration
	unexpected error
}

func (f *flood) run(ctx context.Context, v *Verifier, body string) {
	for ctx.Err() == nil {
		start := time.Now()
		_, err := v.Verify(ctx, unknownKIDToken(body))
		f.record(time.Since(start), err)
		// Pacing, so the flood (still thousands a second) leaves the
		// machine's cores to the verifier and the JWKS server.
		time.Sleep(time.Millisecond)
	}
}

func (f *flood) record(latency time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.maxLatency = max(f.maxLatency, latency)
	if f.unexpected == nil && (!errors.Is(err, authz.ErrUnauthenticated) || !strings.HasSuffix(err.Error(), ": unknown signing key")) {
		f.unexpected = fmt.Errorf("token with an unknown kid: %v, want ErrUnauthenticated: unknown signing key", err)
	}
}

// unknownKIDToken puts a random kid in front of body (claims and
// signature); no key is ever found to check the signature with. It calls
// no t methods, so the flood's goroutines may use it.
func unknownKIDToken(body string) string {
	header := fmt.Sprintf(`{"alg":"ES256","kid":%q}`, rand.Text())
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + body
}

// waitUntil polls cond until it holds, failing after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	})
}

func TestUnknownKIDFlood(t *testing.T) {
	old, rotated, attacker := newECKey(t, "old"), newECKey(t, "rotated"), newECKey(t, "attacker")
	srv := newJWKSServer(t, publicJWKS(t, old))
	// The real clock and the default configuration, on purpose.
	v, err := New(t.Context(), urlConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	attackerToken := attacker.sign(t, claimsAt(time.Now(), nil), nil)
	body := attackerToken[strings.Index(attackerToken, ".")+1:]
	loaded := srv.count()

	start := time.Now()
	ctx, stop := context.WithCancel(t.Context())
	var f flood
	var workers sync.WaitGroup
	stopFlood := func() {
		stop()
		workers.Wait()
	}
	defer stopFlood()
	for range 8 {
		workers.Go(func() { f.run(ctx, v, body) })
	}

	// The flood's first unknown kid refetches at once (the initial load is
	// not a refetch); rotating after it means the new key has to wait for
	// the next allowed refetch, the worst case.
	waitUntil(t, 5*time.Second, "the flood's first refetch", func() bool { return srv.count() > loaded })
	time.Sleep(time.Until(start.Add(time.Second)))
	srv.set(http.StatusOK, publicJWKS(t, old, rotated))
	rotatedAt := time.Now()
	newToken := rotated.sign(t, claimsAt(rotatedAt, nil), nil)
	waitUntil(t, promisedInterval, "a token by the rotated key accepted", func() bool {
		_, err := v.Verify(t.Context(), newToken)
		return err == nil
	})
	acceptedAfter := time.Since(rotatedAt)

	time.Sleep(time.Until(start.Add(floodFor)))
	stopFlood()
	elapsed := time.Since(start)
	fetches := srv.count() - loaded
	limit := 1 + int(elapsed/promisedInterval)
	t.Logf("%d tokens with unknown kids in %s: %d JWKS fetches (limit %d), slowest answer %s; rotated key accepted after %s",
		f.requests, elapsed.Round(time.Millisecond), fetches, limit, f.maxLatency, acceptedAfter.Round(time.Millisecond))
	if fetches > limit {
		t.Errorf("%d JWKS fetches in %s of flood, want at most %d", fetches, elapsed, limit)
	}
	if f.unexpected != nil {
		t.Error(f.unexpected)
	}
	if f.requests < 1000 {
		t.Errorf("only %d tokens sent: not a flood", f.requests)
	}
	// Waiting is only ever for a fetch in flight, which takes milliseconds
	// here; a refused refetch answers at once.
	if f.maxLatency > time.Second {
		t.Errorf("a token with an unknown kid waited %s for its 401", f.maxLatency)
	}
}
