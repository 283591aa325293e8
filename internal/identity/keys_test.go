package identity

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// wantReason fails unless err is an ErrUnauthenticated with reason.
func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if !errors.Is(err, authz.ErrUnauthenticated) || !strings.HasSuffix(err.Error(), ": "+reason) {
		t.Fatalf("error %v, want ErrUnauthenticated with reason %q", err, reason)
	}
}

func wantFetches(t *testing.T, srv *jwksServer, want int) {
	t.Helper()
	if got := srv.count(); got != want {
		t.Fatalf("JWKS fetched %d times, want %d", got, want)
	}
}

func TestUnknownKIDRefetchIsRateLimited(t *testing.T) {
	a, c, d := newECKey(t, "a"), newECKey(t, "c"), newECKey(t, "d")
	clock := newFakeClock()
	srv := newJWKSServer(t, publicJWKS(t, a))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)
	wantFetches(t, srv, 1)

	_, err := v.Verify(t.Context(), c.sign(t, claimsAt(clock.Now(), nil), nil))
	wantReason(t, err, "unknown signing key")
	wantFetches(t, srv, 2)

	_, err = v.Verify(t.Context(), d.sign(t, claimsAt(clock.Now(), nil), nil))
	wantReason(t, err, "unknown signing key")
	wantFetches(t, srv, 2)

	clock.Advance(DefaultRefreshInterval)
	_, err = v.Verify(t.Context(), c.sign(t, claimsAt(clock.Now(), nil), nil))
	wantReason(t, err, "unknown signing key")
	wantFetches(t, srv, 3)
}

func TestFailedRefreshKeepsKeys(t *testing.T) {
	// Every way a refresh can fail counts as the JWKS being down: the
	// cached keys keep serving (TestHostileTokens has the bound), and a kid
	// they lack cannot be looked up, which is a 503, not a 401.
	a, stranger, other := newECKey(t, "a"), newECKey(t, "stranger"), newRSAKey(t, "other")
	tests := []struct {
		name   string
		status int
		body   []byte
	}{
		{"server error", http.StatusInternalServerError, nil},
		{"not JSON", http.StatusOK, []byte("<html>")},
		{"oversized", http.StatusOK, bytes.Repeat([]byte(" "), maxJWKSBytes+1)},
		{"no usable key", http.StatusOK, jwksOf(t, other.publicJWK(t, map[string]any{"use": "enc"}))},
		{"not found", http.StatusNotFound, publicJWKS(t, stranger)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newJWKSServer(t, publicJWKS(t, a))
			v := newTestVerifier(t, urlConfig(srv.URL), clock)
			srv.set(tt.status, tt.body)
			clock.Advance(DefaultCacheTTL)
			if _, err := v.Verify(t.Context(), a.sign(t, claimsAt(clock.Now(), nil), nil)); err != nil {
				t.Fatalf("token by the cached key: %v", err)
			}
			wantFetches(t, srv, 2)
			// The failed attempt counts against the refetch budget, so an
			// outage is not hammered once per request.
			_, err := v.Verify(t.Context(), stranger.sign(t, claimsAt(clock.Now(), nil), nil))
			if !errors.Is(err, authz.ErrUnavailable) || errors.Is(err, authz.ErrUnauthenticated) {
				t.Fatalf("unknown kid after a failed refresh: %v, want ErrUnavailable only", err)
			}
			wantFetches(t, srv, 2)
		})
	}
}

func TestConcurrentUnknownKIDFetchOnce(t *testing.T) {
	a, b := newECKey(t, "a"), newECKey(t, "b")
	clock := newFakeClock()
	srv := newJWKSServer(t, publicJWKS(t, a))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)

	srv.set(http.StatusOK, publicJWKS(t, a, b))
	release, _ := srv.hold()
	token := b.sign(t, claimsAt(clock.Now(), nil), nil)
	const n = 16
	var started, done sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	for range n {
		done.Go(func() {
			started.Done()
			_, err := v.Verify(t.Context(), token)
			errs <- err
		})
	}
	// The first fetch is held until every caller is under way, so they all
	// meet the unknown kid while it is in flight.
	started.Wait()
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	wantFetches(t, srv, 2)
}

func TestStaleCacheDoesNotWaitForFetchInFlight(t *testing.T) {
	a, b := newECKey(t, "a"), newECKey(t, "b")
	clock := newFakeClock()
	srv := newJWKSServer(t, publicJWKS(t, a))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)

	srv.set(http.StatusOK, publicJWKS(t, a, b))
	release, entered := srv.hold()
	tokenB := b.sign(t, claimsAt(clock.Now(), nil), nil)
	errB := make(chan error, 1)
	go func() {
		_, err := v.Verify(t.Context(), tokenB)
		errB <- err
	}()
	<-entered

	// With a fetch in flight, a stale cache serves tokens by known keys
	// instead of queueing them behind it.
	clock.Advance(DefaultCacheTTL)
	if _, err := v.Verify(t.Context(), a.sign(t, claimsAt(clock.Now(), nil), nil)); err != nil {
		t.Fatalf("token by a cached key during a fetch: %v", err)
	}
	close(release)
	if err := <-errB; err != nil {
		t.Fatalf("token by the new key: %v", err)
	}
	wantFetches(t, srv, 2)
}

func TestNewFailures(t *testing.T) {
	a := newECKey(t, "a")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	hanging := newJWKSServer(t, publicJWKS(t, a))
	hanging.hold()

	tests := []struct {
		name string
		cfg  func() Config
		want error
	}{
		{"invalid config", func() Config { return Config{} }, authz.ErrInvalid},
		{"missing file", func() Config {
			return Config{JWKSFile: filepath.Join(dir, "absent.json"), Issuer: testIssuer, Audience: testAudience}
		}, authz.ErrInvalid},
		{"garbage file", func() Config { return Config{JWKSFile: garbage, Issuer: testIssuer, Audience: testAudience} }, authz.ErrInvalid},
		{"server error", func() Config {
			srv := newJWKSServer(t, publicJWKS(t, a))
			srv.set(http.StatusServiceUnavailable, nil)
			return urlConfig(srv.URL)
		}, authz.ErrUnavailable},
		{"oversized set", func() Config {
			return urlConfig(newJWKSServer(t, bytes.Repeat([]byte(" "), maxJWKSBytes+1)).URL)
		}, authz.ErrUnavailable},
		{"unusable set", func() Config { return urlConfig(newJWKSServer(t, []byte(`{"keys":[]}`)).URL) }, authz.ErrUnavailable},
		{"nobody listening", func() Config { return urlConfig(closedURL) }, authz.ErrUnavailable},
		{"server too slow", func() Config {
			cfg := urlConfig(hanging.URL)
			cfg.HTTPTimeout = 50 * time.Millisecond
			return cfg
		}, authz.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(t.Context(), tt.cfg())
			if !errors.Is(err, tt.want) {
				t.Fatalf("New = %v, %v; want %v", v, err, tt.want)
			}
		})
	}
}

func writeJWKSFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileMode(t *testing.T) {
	a, b := newECKey(t, "a"), newECKey(t, "b")
	aNoKID := a
	aNoKID.kid = ""
	clock := newFakeClock()
	cfg := Config{JWKSFile: writeJWKSFile(t, publicJWKS(t, a)), Issuer: testIssuer, Audience: testAudience}
	v := newTestVerifier(t, cfg, clock)

	if _, err := v.Verify(t.Context(), a.sign(t, claimsAt(clock.Now(), nil), nil)); err != nil {
		t.Fatalf("token by the file's key: %v", err)
	}
	// A single published key needs no kid.
	if _, err := v.Verify(t.Context(), aNoKID.sign(t, claimsAt(clock.Now(), nil), nil)); err != nil {
		t.Fatalf("token without kid: %v", err)
	}
	// The file is read once: a key added later is not trusted.
	if err := os.WriteFile(cfg.JWKSFile, publicJWKS(t, a, b), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCacheTTL)
	_, err := v.Verify(t.Context(), b.sign(t, claimsAt(clock.Now(), nil), nil))
	wantReason(t, err, "unknown signing key")
}

func TestKeySetEntriesSkipped(t *testing.T) {
	good, dup, enc := newECKey(t, "good"), newECKey(t, "good"), newECKey(t, "enc")
	clock := newFakeClock()
	weakPriv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakJWK := json.RawMessage(fmt.Sprintf(`{"kty":"RSA","kid":"weak","n":%q,"e":"AQAB"}`,
		base64.RawURLEncoding.EncodeToString(weakPriv.N.Bytes())))
	weakToken := craft(t, map[string]any{"alg": "RS256", "kid": "weak"}, claimsAt(clock.Now(), nil), func(input []byte) []byte {
		digest := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(rand.Reader, weakPriv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	})
	oct, err := jwk.Import([]byte("a shared secret that must never verify anything"))
	if err != nil {
		t.Fatal(err)
	}
	if err := oct.Set(jwk.KeyIDKey, "oct"); err != nil {
		t.Fatal(err)
	}
	entries := []any{
		good.publicJWK(t, nil),
		dup.publicJWK(t, nil),
		enc.publicJWK(t, map[string]any{"use": "enc"}),
		weakJWK,
		oct,
		json.RawMessage(`{"kty":"PQ-SOMETHING","kid":"future"}`),
	}
	data, err := json.Marshal(map[string]any{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := Config{JWKSFile: writeJWKSFile(t, data), Issuer: testIssuer, Audience: testAudience,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	v := newTestVerifier(t, cfg, clock)
	now := clock.Now()

	if _, err := v.Verify(t.Context(), good.sign(t, claimsAt(now, nil), nil)); err != nil {
		t.Fatalf("token by the good key: %v", err)
	}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"second key with a taken kid", dup.sign(t, claimsAt(now, nil), nil), "invalid signature"},
		{"encryption key", enc.sign(t, claimsAt(now, nil), nil), "unknown signing key"},
		{"short RSA key", weakToken, "unknown signing key"},
		{"RS256 naming the symmetric key", newRSAKey(t, "oct").sign(t, claimsAt(now, nil), nil), "unknown signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.token)
			wantReason(t, err, tt.reason)
		})
	}
	for _, kid := range []string{"good", "enc", "weak", "oct", "future"} {
		if !strings.Contains(logs.String(), "kid="+kid) {
			t.Errorf("no log line about skipping %q:\n%s", kid, logs.String())
		}
	}
}

func TestPrivateKeyInKeySet(t *testing.T) {
	a := newECKey(t, "a")
	priv, err := jwk.Import(a.priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := priv.Set(jwk.KeyIDKey, "a"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	clock := newFakeClock()
	cfg := Config{JWKSFile: writeJWKSFile(t, jwksOf(t, priv)), Issuer: testIssuer, Audience: testAudience,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	v := newTestVerifier(t, cfg, clock)

	if _, err := v.Verify(t.Context(), a.sign(t, claimsAt(clock.Now(), nil), nil)); err != nil {
		t.Fatalf("token by the published key: %v", err)
	}
	if !strings.Contains(logs.String(), "private key material") {
		t.Fatalf("no warning about the private key:\n%s", logs.String())
	}
}
