package identity

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// countChecks counts v's signature checks; a cache hit makes none.
func countChecks(v *Verifier) *atomic.Int64 {
	var n atomic.Int64
	v.onSignatureCheck = func() { n.Add(1) }
	return &n
}

func wantChecks(t *testing.T, checks *atomic.Int64, want int) {
	t.Helper()
	if got := checks.Load(); got != int64(want) {
		t.Fatalf("%d signature checks, want %d", got, want)
	}
}

func TestTokenCacheRepeatedTokenVerifiedOnce(t *testing.T) {
	rsaKey, ecKey, edKey := newRSAKey(t, "rsa"), newECKey(t, "ec"), newEdKey(t, "ed")
	ecNoKID := ecKey
	ecNoKID.kid = ""
	const repeats = 3
	tests := []struct {
		name      string
		published []testKey
		signer    testKey
		changes   map[string]any
		cacheSize int
		checks    int
	}{
		{"RS256", []testKey{rsaKey, ecKey}, rsaKey, nil, 0, 1},
		{"ES256", []testKey{rsaKey, ecKey}, ecKey, nil, 0, 1},
		{"EdDSA", []testKey{edKey}, edKey, nil, 0, 1},
		{"cognito access token", []testKey{ecKey}, ecKey, map[string]any{"aud": nil, "token_use": "access", "client_id": testAudience}, 0, 1},
		{"no kid, single-key set", []testKey{ecKey}, ecNoKID, nil, 0, 1},
		{"cache of one", []testKey{ecKey}, ecKey, nil, 1, 1},
		{"cache off", []testKey{ecKey}, ecKey, nil, -1, repeats},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newJWKSServer(t, publicJWKS(t, tt.published...))
			cfg := urlConfig(srv.URL)
			cfg.TokenCacheSize = tt.cacheSize
			cfg.GroupsClaim = "groups"
			v := newTestVerifier(t, cfg, clock)
			checks := countChecks(v)
			// sub is not claimsAt's default, so that the comparison below
			// cannot pass on a principal that did not come from this token.
			changes := map[string]any{"sub": "user-7", "groups": []string{"ops", "Admin"}}
			maps.Copy(changes, tt.changes)
			token := tt.signer.sign(t, claimsAt(clock.Now(), changes), nil)
			want := Principal{Subject: "user-7", Groups: []string{"ops", "Admin"}}
			for i := range repeats {
				p, err := v.Verify(t.Context(), token)
				if err != nil {
					t.Fatalf("Verify #%d: %v", i+1, err)
				}
				if p.Subject != want.Subject || !slices.Equal(p.Groups, want.Groups) {
					t.Fatalf("Verify #%d = %+v, want %+v", i+1, p, want)
				}
			}
			wantChecks(t, checks, tt.checks)
		})
	}
}

func TestTokenCacheExpiry(t *testing.T) {
	key := newECKey(t, "a")
	tests := []struct {
		name   string
		leeway time.Duration
		// after is how long past exp the token is presented again.
		after  time.Duration
		reason string // empty: accepted, from the cache
	}{
		{"before exp", 0, -time.Second, ""},
		{"within the default leeway", 0, DefaultLeeway - time.Second, ""},
		{"at the default leeway edge", 0, DefaultLeeway, "token expired"},
		{"long expired", 0, time.Hour, "token expired"},
		{"within a configured leeway", 2 * time.Minute, 2*time.Minute - time.Second, ""},
		{"at a configured leeway edge", 2 * time.Minute, 2 * time.Minute, "token expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newJWKSServer(t, publicJWKS(t, key))
			cfg := urlConfig(srv.URL)
			cfg.Leeway = tt.leeway
			v := newTestVerifier(t, cfg, clock)
			checks := countChecks(v)
			exp := clock.Now().Add(time.Minute)
			token := key.sign(t, claimsAt(clock.Now(), map[string]any{"exp": exp.Unix()}), nil)
			if _, err := v.Verify(t.Context(), token); err != nil {
				t.Fatalf("first Verify: %v", err)
			}
			clock.Advance(exp.Add(tt.after).Sub(clock.Now()))
			_, err := v.Verify(t.Context(), token)
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				return
			}
			if err != nil {
				t.Fatalf("second Verify: %v", err)
			}
			wantChecks(t, checks, 1)
		})
	}
}

func TestTokenCacheKeySetTTL(t *testing.T) {
	key := newECKey(t, "a")
	jwks := publicJWKS(t, key)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  bool
		after time.Duration
		// checks counts the signature checks of two Verify calls that
		// are after apart.
		checks int
	}{
		{"URL: within the key set's TTL", false, DefaultCacheTTL - time.Second, 1},
		{"URL: at the key set's TTL", false, DefaultCacheTTL, 2},
		{"file: read once, no TTL", true, DefaultCacheTTL, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newJWKSServer(t, jwks)
			cfg := urlConfig(srv.URL)
			if tt.file {
				cfg.JWKSURL, cfg.JWKSFile = "", file
			}
			v := newTestVerifier(t, cfg, clock)
			checks := countChecks(v)
			token := key.sign(t, claimsAt(clock.Now(), nil), nil)
			for i := range 2 {
				if i == 1 {
					clock.Advance(tt.after)
				}
				if _, err := v.Verify(t.Context(), token); err != nil {
					t.Fatalf("Verify #%d: %v", i+1, err)
				}
			}
			wantChecks(t, checks, tt.checks)
		})
	}
}

func TestTokenCacheKeyRotatedOut(t *testing.T) {
	a, b, stranger := newRSAKey(t, "a"), newECKey(t, "b"), newECKey(t, "stranger")
	aNoKID := a
	aNoKID.kid = ""
	aReplaced := newRSAKey(t, "a") // the same kid, another key
	tests := []struct {
		name      string
		published []byte
		signer    testKey
		refreshed []byte
		reason    string // empty: still served from the cache
	}{
		{"key kept", publicJWKS(t, a, b), a, publicJWKS(t, a), ""},
		{"key retired", publicJWKS(t, a, b), a, publicJWKS(t, b), "unknown signing key"},
		{"kid now names another key", publicJWKS(t, a), a, publicJWKS(t, aReplaced), "invalid signature"},
		{"no kid, and the set grows to two keys", publicJWKS(t, a), aNoKID, publicJWKS(t, a, b), "token has no key id"},
		{"key now pinned to another algorithm", publicJWKS(t, a), a, jwksOf(t, a.publicJWK(t, map[string]any{"alg": jwa.PS256().String()})), "algorithm does not fit the signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newJWKSServer(t, tt.published)
			v := newTestVerifier(t, urlConfig(srv.URL), clock)
			checks := countChecks(v)
			token := tt.signer.sign(t, claimsAt(clock.Now(), nil), nil)
			for i := range 2 {
				if _, err := v.Verify(t.Context(), token); err != nil {
					t.Fatalf("Verify #%d before the refresh: %v", i+1, err)
				}
			}
			wantChecks(t, checks, 1)

			// An unknown kid refreshes the key set well within CacheTTL.
			srv.set(http.StatusOK, tt.refreshed)
			_, err := v.Verify(t.Context(), stranger.sign(t, claimsAt(clock.Now(), nil), nil))
			wantReason(t, err, "unknown signing key")
			wantFetches(t, srv, 2)

			_, err = v.Verify(t.Context(), token)
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				return
			}
			if err != nil {
				t.Fatalf("Verify after the refresh: %v", err)
			}
			wantChecks(t, checks, 1)
		})
	}
}

func TestTokenCacheBounded(t *testing.T) {
	key := newECKey(t, "a")
	const distinct = 100
	clock := newFakeClock()
	tokens := make([]string, distinct)
	for i := range tokens {
		tokens[i] = key.sign(t, claimsAt(clock.Now(), map[string]any{"sub": fmt.Sprintf("user-%d", i)}), nil)
	}
	tests := []struct {
		name string
		size int
	}{
		{"one entry", 1},
		{"eight entries", 8},
		{"more room than tokens", 2 * distinct},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, publicJWKS(t, key))
			cfg := urlConfig(srv.URL)
			cfg.TokenCacheSize = tt.size
			v := newTestVerifier(t, cfg, clock)
			checks := countChecks(v)
			verify := func(i int) {
				p, err := v.Verify(t.Context(), tokens[i])
				if want := fmt.Sprintf("user-%d", i); err != nil || p.Subject != want {
					t.Errorf("Verify token %d = %+v, %v; want subject %q", i, p, err, want)
				}
			}
			for i := range tokens {
				verify(i)
				if n := v.tokens.len(); n > tt.size {
					t.Fatalf("%d entries after %d tokens, bound %d", n, i+1, tt.size)
				}
			}
			wantChecks(t, checks, distinct)
			kept := min(tt.size, distinct)
			// The most recent tokens are remembered, the oldest evicted.
			for i := distinct - kept; i < distinct; i++ {
				verify(i)
			}
			wantChecks(t, checks, distinct)
			if kept < distinct {
				verify(0)
				wantChecks(t, checks, distinct+1)
			}

			// Concurrent callers keep the bound (and -race finds no race).
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range tokens {
						verify((i + w*13) % distinct)
					}
				})
			}
			wg.Wait()
			if n := v.tokens.len(); n > tt.size {
				t.Fatalf("%d entries after concurrent use, bound %d", n, tt.size)
			}
		})
	}
}

func TestTokenCacheRejectionsNotCached(t *testing.T) {
	key, stranger := newECKey(t, "a"), newECKey(t, "stranger")
	impostor := newECKey(t, "a")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, key))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)
	checks := countChecks(v)

	tests := []struct {
		name   string
		token  string
		reason string
		// checked says whether the token gets as far as its signature.
		checked bool
	}{
		{"malformed", "a.b.c", "malformed token", false},
		{"unknown kid", stranger.sign(t, claimsAt(now, nil), nil), "unknown signing key", false},
		{"invalid signature", impostor.sign(t, claimsAt(now, nil), nil), "invalid signature", true},
		{"expired", key.sign(t, claimsAt(now, map[string]any{"exp": now.Add(-time.Hour).Unix()}), nil), "token expired", true},
		{"wrong audience", key.sign(t, claimsAt(now, map[string]any{"aud": "other"}), nil), "wrong audience", true},
		{"invalid subject", key.sign(t, claimsAt(now, map[string]any{"sub": "*"}), nil), "subject is not a valid user id", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := checks.Load()
			for range 2 {
				_, err := v.Verify(t.Context(), tt.token)
				wantReason(t, err, tt.reason)
			}
			want := before
			if tt.checked {
				want += 2
			}
			wantChecks(t, checks, int(want))
			if n := v.tokens.len(); n != 0 {
				t.Fatalf("%d entries cached after rejections", n)
			}
		})
	}
}

func TestTokenCacheGroups(t *testing.T) {
	key := newECKey(t, "a")
	clock := newFakeClock()
	srv := newJWKSServer(t, publicJWKS(t, key))
	tests := []struct {
		name   string
		groups any
		want   []string
	}{
		{"array", []string{"Admin", "ops", "Admin"}, []string{"Admin", "ops"}},
		{"string", "Admin ops", []string{"Admin", "ops"}},
		{"wrong type", 42, nil},
		{"too many", numberedGroups(maxGroups + 1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := urlConfig(srv.URL)
			cfg.GroupsClaim = "cognito:groups"
			v := newTestVerifier(t, cfg, clock)
			checks := countChecks(v)
			token := key.sign(t, claimsAt(clock.Now(), map[string]any{"cognito:groups": tt.groups}), nil)
			for i := range 3 {
				p, err := v.Verify(t.Context(), token)
				if err != nil {
					t.Fatalf("Verify #%d: %v", i+1, err)
				}
				if !slices.Equal(p.Groups, tt.want) {
					t.Fatalf("Verify #%d groups = %q, want %q", i+1, p.Groups, tt.want)
				}
				// What a caller does with its copy must not reach the
				// cache, and through it the next caller.
				if len(p.Groups) > 0 {
					p.Groups[0] = "platform-admins"
					p.Groups = append(p.Groups[:1], "platform-admins")
				}
			}
			wantChecks(t, checks, 1)
		})
	}
}
