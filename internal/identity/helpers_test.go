package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	testIssuer   = "https://issuer.example"
	testAudience = "tenantgate"
)

// fakeClock lets tests step past RefreshInterval and CacheTTL without waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is a signing key of the fake issuer.
type testKey struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
}

func newRSAKey(t *testing.T, kid string) testKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jwa.RS256(), priv: priv}
}

func newECKey(t *testing.T, kid string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jwa.ES256(), priv: priv}
}

func newEdKey(t *testing.T, kid string) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jwa.EdDSA(), priv: priv}
}

// publicJWK is k's public half as a JWK with its kid; extra fields such as
// "alg" or "use" are set on top.
func (k testKey) publicJWK(t *testing.T, extra map[string]any) jwk.Key {
	t.Helper()
	key, err := jwk.Import(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]any{jwk.KeyIDKey: k.kid}
	maps.Copy(fields, extra)
	for name, value := range fields {
		if err := key.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	return key
}

func jwksOf(t *testing.T, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func publicJWKS(t *testing.T, keys ...testKey) []byte {
	t.Helper()
	jwks := make([]jwk.Key, 0, len(keys))
	for _, k := range keys {
		jwks = append(jwks, k.publicJWK(t, nil))
	}
	return jwksOf(t, jwks...)
}

// sign makes a compact JWS of claims with k's algorithm; header entries are
// added to the protected header, and the kid is set unless k.kid is empty.
func (k testKey) sign(t *testing.T, claims map[string]any, header map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return k.signPayload(t, payload, header)
}

func (k testKey) signPayload(t *testing.T, payload []byte, header map[string]any) string {
	t.Helper()
	hdr := jws.NewHeaders()
	if k.kid != "" {
		if err := hdr.Set(jws.KeyIDKey, k.kid); err != nil {
			t.Fatal(err)
		}
	}
	for name, value := range header {
		if err := hdr.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// craft assembles a compact token by hand, for what jwx refuses to produce.
func craft(t *testing.T, header, claims map[string]any, sign func(signingInput []byte) []byte) string {
	t.Helper()
	enc := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	input := enc(header) + "." + enc(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

// claimsAt is a valid claim set at now; changes are applied on top and a
// nil value removes a claim.
func claimsAt(now time.Time, changes map[string]any) map[string]any {
	c := map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "user-1",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for name, value := range changes {
		if value == nil {
			delete(c, name)
			continue
		}
		c[name] = value
	}
	return c
}

// jwksServer serves a replaceable JWKS and counts the fetches.
type jwksServer struct {
	URL     string
	fetches atomic.Int64
	srv     *httptest.Server

	mu      sync.Mutex
	body    []byte
	status  int
	gate    chan struct{}
	entered chan struct{}
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL, s.srv = srv.URL, srv
	return s
}

// stop takes the server down for good: fetches then fail to connect.
func (s *jwksServer) stop() { s.srv.Close() }

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	body, status, gate, entered := s.body, s.status, s.gate, s.entered
	s.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// hold makes responses wait until release is closed; each held request
// first sends on entered (which has room for a few).
func (s *jwksServer) hold() (release, entered chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 64)
	return s.gate, s.entered
}

func (s *jwksServer) count() int { return int(s.fetches.Load()) }

func urlConfig(url string) Config {
	return Config{JWKSURL: url, Issuer: testIssuer, Audience: testAudience}
}

func newTestVerifier(t *testing.T, cfg Config, clock *fakeClock) *Verifier {
	t.Helper()
	v, err := newVerifier(t.Context(), cfg, clock.Now)
	if err != nil {
		t.Fatalf("new verifier: %v", err)
	}
	return v
}
