package identity

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// hostileEnv is the world of one TestHostileTokens case: our issuer's JWKS
// on a server of its own, and a fresh verifier of it on a fake clock, so
// that a case may rotate keys, take the JWKS down or move time without
// touching the others.
type hostileEnv struct {
	clock *fakeClock
	srv   *jwksServer
	v     *Verifier
	// checks counts v's signature checks.
	checks *atomic.Int64
}

// claims is a valid claim set at the env's current time, with changes.
func (e *hostileEnv) claims(changes map[string]any) map[string]any {
	return claimsAt(e.clock.Now(), changes)
}

type hostileCase struct {
	name string
	// cfg changes the verifier's configuration; nil keeps urlConfig's.
	cfg func(*Config)
	// before runs once the verifier is up and before the token is made:
	// it rotates keys, takes the JWKS down, moves the clock, and asserts
	// on the steps on the way.
	before func(t *testing.T, e *hostileEnv)
	token  func(t *testing.T, e *hostileEnv) string
	// want is nil when the token must be accepted, else the error kind it
	// must be refused with: authz.ErrUnauthenticated (401) or
	// authz.ErrUnavailable (503), and never the other as well.
	want error
	// reason is the client-visible reason of an ErrUnauthenticated.
	reason string
	// after checks side effects: fetches, signature checks.
	after func(t *testing.T, e *hostileEnv)
}

// signedBy makes a token of k over the valid claims with changes, with
// header entries added.
func signedBy(k testKey, changes, header map[string]any) func(*testing.T, *hostileEnv) string {
	return func(t *testing.T, e *hostileEnv) string {
		t.Helper()
		return k.sign(t, e.claims(changes), header)
	}
}

// mangled makes a valid token of k and hands its three parts to mangle.
func mangled(k testKey, mangle func(parts []string) string) func(*testing.T, *hostileEnv) string {
	return func(t *testing.T, e *hostileEnv) string {
		t.Helper()
		return mangle(strings.Split(k.sign(t, e.claims(nil), nil), "."))
	}
}

// crafted assembles a token with header by hand (see craft), for what jwx
// refuses to sign.
func crafted(header, changes map[string]any, sign func([]byte) []byte) func(*testing.T, *hostileEnv) string {
	return func(t *testing.T, e *hostileEnv) string {
		t.Helper()
		return craft(t, header, e.claims(changes), sign)
	}
}

// rs256 signs a crafted token's signing input as RS256 does, with k.
func rs256(t *testing.T, k testKey) func([]byte) []byte {
	return func(input []byte) []byte {
		digest := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(nil, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write(input)
		return mac.Sum(nil)
	}
}

// wantFetchesAndChecks checks how often the JWKS was fetched (the initial
// load included) and how many signatures were checked.
func wantFetchesAndChecks(fetches, checks int) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		t.Helper()
		wantFetches(t, e.srv, fetches)
		wantChecks(t, e.checks, checks)
	}
}

// attackerSite serves an attacker's key set at /jwks and its certificate
// at /cert.pem, and counts every request: tokens point their jku and x5u
// here, and the verifier must never come.
type attackerSite struct {
	URL      string
	requests atomic.Int64
}

func newAttackerSite(t *testing.T, keys ...testKey) *attackerSite {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, keys[0].priv.Public(), keys[0].priv)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	jwks := publicJWKS(t, keys...)
	site := &attackerSite{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site.requests.Add(1)
		switch r.URL.Path {
		case "/jwks":
			_, _ = w.Write(jwks)
		case "/cert.pem":
			_, _ = w.Write(cert)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	site.URL = srv.URL
	return site
}

// TestHostileTokens is issue 15's list of hostile tokens, each of which
// must be refused with a 401 (never a 500, never a pass), followed by key
// rotation and a JWKS that is down, where a token that cannot be checked
// is a 503. A few accepted controls show that each refusal is down to what
// the case changes, not to a verifier that refuses everything.
func TestHostileTokens(t *testing.T) {
	// Our issuer publishes rsaKey and ecKey.
	rsaKey, ecKey := newRSAKey(t, "rsa"), newECKey(t, "ec")
	psKey := rsaKey
	psKey.alg = jwa.PS256()
	ecNoKID := ecKey
	ecNoKID.kid = ""
	ourJWKS := publicJWKS(t, rsaKey, ecKey)
	// rotated is the key the issuer rotates in; unpublished one it never
	// publishes.
	rotated, unpublished := newECKey(t, "rotated"), newECKey(t, "unpublished")

	// An attacker's key, under a kid of its own and under one of ours,
	// offered through jku, x5u and jwk.
	attacker := newECKey(t, "attacker")
	attackerAsOurs := attacker
	attackerAsOurs.kid = ecKey.kid
	site := newAttackerSite(t, attacker, attackerAsOurs)
	attackerJWK := attackerAsOurs.publicJWK(t, nil)

	// Another issuer, with valid keys of its own: one under a kid we use
	// too. Its own verifier accepts its tokens.
	const otherIssuer = "https://other-issuer.example"
	otherKey, otherOurKID := newECKey(t, "other"), newECKey(t, ecKey.kid)
	otherCfg := urlConfig(newJWKSServer(t, publicJWKS(t, otherKey, otherOurKID)).URL)
	otherCfg.Issuer = otherIssuer
	otherV := newTestVerifier(t, otherCfg, newFakeClock())
	validAtOtherIssuer := func(k testKey) func(*testing.T, *hostileEnv) {
		return func(t *testing.T, e *hostileEnv) {
			t.Helper()
			token := k.sign(t, e.claims(map[string]any{"iss": otherIssuer}), nil)
			if _, err := otherV.Verify(t.Context(), token); err != nil {
				t.Fatalf("the other issuer's verifier refuses its own key: %v", err)
			}
		}
	}

	// pubDER and pubPEM are our RSA public key as an HMAC secret would be
	// taken from it.
	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	unsigned := func([]byte) []byte { return nil }

	onlyAlgorithms := func(algs ...string) func(*Config) {
		return func(c *Config) { c.Algorithms = algs }
	}
	// wantUnavailable runs a step that must be a 503.
	wantUnavailable := func(t *testing.T, e *hostileEnv, k testKey, what string) {
		t.Helper()
		_, err := e.v.Verify(t.Context(), k.sign(t, e.claims(nil), nil))
		if !errors.Is(err, authz.ErrUnavailable) || errors.Is(err, authz.ErrUnauthenticated) {
			t.Fatalf("%s: %v, want ErrUnavailable only", what, err)
		}
	}

	tests := []hostileCase{
		{name: "control: a valid token", token: signedBy(ecKey, nil, nil),
			after: wantFetchesAndChecks(1, 1)},

		// alg none. Refused before any key is looked up or any signature
		// checked.
		{name: "alg none without a signature", token: crafted(map[string]any{"alg": "none", "kid": "ec"}, nil, unsigned),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},
		{name: "alg none without a signature or kid", token: crafted(map[string]any{"alg": "none"}, nil, unsigned),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},
		{name: "alg none with a signature by our key", token: crafted(map[string]any{"alg": "none", "kid": "rsa"}, nil, rs256(t, rsaKey)),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},
		{name: "alg NONE with a signature by our key", token: crafted(map[string]any{"alg": "NONE", "kid": "rsa"}, nil, rs256(t, rsaKey)),
			want: authz.ErrUnauthenticated, reason: "malformed token", after: wantFetchesAndChecks(1, 0)},

		// HS256 keyed with the RSA public key, in the forms a confused
		// verifier might take it in.
		{name: "HS256 signed with the RSA public key as PEM", token: crafted(map[string]any{"alg": "HS256", "kid": "rsa"}, nil, hs256(pubPEM)),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},
		{name: "HS256 signed with the RSA public key as DER", token: crafted(map[string]any{"alg": "HS256", "kid": "rsa"}, nil, hs256(pubDER)),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},

		// Algorithms off the configured allow-list, by keys we publish.
		{name: "control: ES256 when only ES256 is allowed", cfg: onlyAlgorithms("ES256"), token: signedBy(ecKey, nil, nil)},
		{name: "RS256 off the allow-list (only ES256)", cfg: onlyAlgorithms("ES256"), token: signedBy(rsaKey, nil, nil),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},
		{name: "PS256 off the allow-list (only RS256), by the same RSA key", cfg: onlyAlgorithms("RS256"), token: signedBy(psKey, nil, nil),
			want: authz.ErrUnauthenticated, reason: "algorithm not allowed", after: wantFetchesAndChecks(1, 0)},

		// kid. An unknown one refetches the JWKS once, in case the issuer
		// has rotated it in.
		{name: "unknown kid", token: signedBy(unpublished, nil, nil),
			want: authz.ErrUnauthenticated, reason: "unknown signing key", after: wantFetchesAndChecks(2, 0)},
		{name: "missing kid, two keys published", token: signedBy(ecNoKID, nil, nil),
			want: authz.ErrUnauthenticated, reason: "token has no key id", after: wantFetchesAndChecks(1, 0)},

		// A valid key of another issuer.
		{name: "a valid key of another issuer, its own token", token: signedBy(otherKey, map[string]any{"iss": otherIssuer}, nil),
			want: authz.ErrUnauthenticated, reason: "unknown signing key", after: validAtOtherIssuer(otherKey)},
		{name: "a valid key of another issuer, under a kid we use too, claiming our issuer", token: signedBy(otherOurKID, nil, nil),
			want: authz.ErrUnauthenticated, reason: "invalid signature", after: validAtOtherIssuer(otherOurKID)},

		// The issuer is compared exactly.
		{name: "issuer with a trailing slash", token: signedBy(ecKey, map[string]any{"iss": testIssuer + "/"}, nil),
			want: authz.ErrUnauthenticated, reason: "wrong issuer"},
		{name: "issuer with its host in other case", token: signedBy(ecKey, map[string]any{"iss": "https://ISSUER.example"}, nil),
			want: authz.ErrUnauthenticated, reason: "wrong issuer"},
		{name: "issuer with its scheme in other case", token: signedBy(ecKey, map[string]any{"iss": "HTTPS://issuer.example"}, nil),
			want: authz.ErrUnauthenticated, reason: "wrong issuer"},

		// Audience and time claims. The times are the real clock's, which
		// every case's fake clock starts within a second of, and lie
		// further than the leeway from it.
		{name: "wrong audience", token: signedBy(ecKey, map[string]any{"aud": "other"}, nil),
			want: authz.ErrUnauthenticated, reason: "wrong audience"},
		{name: "missing audience", token: signedBy(ecKey, map[string]any{"aud": nil}, nil),
			want: authz.ErrUnauthenticated, reason: "token has no audience"},
		{name: "expired", token: signedBy(ecKey, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}, nil),
			want: authz.ErrUnauthenticated, reason: "token expired"},
		{name: "missing exp", token: signedBy(ecKey, map[string]any{"exp": nil}, nil),
			want: authz.ErrUnauthenticated, reason: "token has no expiry"},
		{name: "nbf in the future", token: signedBy(ecKey, map[string]any{"nbf": time.Now().Add(time.Minute).Unix()}, nil),
			want: authz.ErrUnauthenticated, reason: "token not yet valid"},
		{name: "iat in the future", token: signedBy(ecKey, map[string]any{"iat": time.Now().Add(time.Minute).Unix()}, nil),
			want: authz.ErrUnauthenticated, reason: "token issued in the future"},

		// The signature cut short.
		{name: "truncated signature, two characters short", token: mangled(ecKey, func(p []string) string { return p[0] + "." + p[1] + "." + p[2][:len(p[2])-2] }),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},
		{name: "truncated signature, one character short (not base64)", token: mangled(ecKey, func(p []string) string { return p[0] + "." + p[1] + "." + p[2][:len(p[2])-1] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		{name: "truncated signature, half", token: mangled(rsaKey, func(p []string) string { return p[0] + "." + p[1] + "." + p[2][:len(p[2])/2] }),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},
		{name: "truncated signature, empty", token: mangled(ecKey, func(p []string) string { return p[0] + "." + p[1] + "." }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},

		// Bad base64. Padded base64 and white space are what jwx would
		// decode anyway, giving one token other spellings.
		{name: "bad base64 in the header", token: mangled(ecKey, func(p []string) string { return "!" + p[0][1:] + "." + p[1] + "." + p[2] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		{name: "bad base64 in the payload", token: mangled(ecKey, func(p []string) string { return p[0] + ".!" + p[1][1:] + "." + p[2] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		{name: "bad base64 in the signature", token: mangled(ecKey, func(p []string) string { return p[0] + "." + p[1] + ".!" + p[2][1:] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		// An ES256 signature is 64 bytes: 86 characters, padded with "==".
		{name: "signature in padded base64", token: mangled(ecKey, func(p []string) string { return p[0] + "." + p[1] + "." + p[2] + "==" }),
			want: authz.ErrUnauthenticated, reason: "malformed token", after: wantFetchesAndChecks(1, 0)},
		{name: "line break after the signature", token: mangled(ecKey, func(p []string) string { return strings.Join(p, ".") + "\n" }),
			want: authz.ErrUnauthenticated, reason: "malformed token", after: wantFetchesAndChecks(1, 0)},

		// Segments.
		{name: "two segments", token: mangled(ecKey, func(p []string) string { return p[0] + "." + p[1] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		{name: "four segments", token: mangled(ecKey, func(p []string) string { return strings.Join(p, ".") + "." + p[2] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		{name: "four segments, the last empty", token: mangled(ecKey, func(p []string) string { return strings.Join(p, ".") + "." }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},
		{name: "five segments, a JWE's shape", token: mangled(ecKey, func(p []string) string { return strings.Join(p, ".") + "." + p[2] + "." + p[2] }),
			want: authz.ErrUnauthenticated, reason: "malformed token"},

		// Size. Both are refused before they are parsed.
		{name: "a header of a million dots", token: mangled(ecKey, func(p []string) string {
			return strings.Repeat(".", 1_000_000) + "." + p[1] + "." + p[2]
		}),
			want: authz.ErrUnauthenticated, reason: "token too large", after: wantFetchesAndChecks(1, 0)},
		{name: "a header of dots up to the size limit", token: mangled(ecKey, func(p []string) string {
			return strings.Repeat(".", maxTokenBytes-len(p[1])-len(p[2])-2) + "." + p[1] + "." + p[2]
		}),
			want: authz.ErrUnauthenticated, reason: "malformed token", after: wantFetchesAndChecks(1, 0)},
		{name: "a 1 MB token", token: signedBy(ecKey, map[string]any{"pad": strings.Repeat("a", 1<<20)}, nil),
			want: authz.ErrUnauthenticated, reason: "token too large", after: wantFetchesAndChecks(1, 0)},

		// crit: we understand no extension, so none may be critical. jwx
		// refuses them when it checks the signature.
		{name: "crit header naming an extension", token: signedBy(ecKey, nil, map[string]any{"crit": []string{"exp"}, "exp": 1}),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},
		{name: "crit header naming a private extension", token: signedBy(ecKey, nil, map[string]any{"crit": []string{"x-tenant"}, "x-tenant": "acme"}),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},
		{name: "crit header b64 (RFC 7797)", token: signedBy(ecKey, nil, map[string]any{"crit": []string{"b64"}, "b64": true}),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},

		// Key URLs and keys in the header are never used, nor fetched (see
		// the attacker's request count after the table).
		{name: "jku pointing elsewhere, signed by the key there", token: signedBy(attacker, nil, map[string]any{"jku": site.URL + "/jwks"}),
			want: authz.ErrUnauthenticated, reason: "unknown signing key"},
		{name: "jku pointing elsewhere, signed by the key there under our kid", token: signedBy(attackerAsOurs, nil, map[string]any{"jku": site.URL + "/jwks"}),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},
		{name: "x5u pointing elsewhere, signed by the certificate's key", token: signedBy(attacker, nil, map[string]any{"x5u": site.URL + "/cert.pem"}),
			want: authz.ErrUnauthenticated, reason: "unknown signing key"},
		{name: "x5u pointing elsewhere, signed by the certificate's key under our kid", token: signedBy(attackerAsOurs, nil, map[string]any{"x5u": site.URL + "/cert.pem"}),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},
		{name: "jwk header with the signing key, under our kid", token: signedBy(attackerAsOurs, nil, map[string]any{"jwk": attackerJWK}),
			want: authz.ErrUnauthenticated, reason: "invalid signature"},

		// Subject.
		{name: "empty subject", token: signedBy(ecKey, map[string]any{"sub": ""}, nil),
			want: authz.ErrUnauthenticated, reason: "subject is not a valid user id"},
		{name: "subject *", token: signedBy(ecKey, map[string]any{"sub": "*"}, nil),
			want: authz.ErrUnauthenticated, reason: "subject is not a valid user id"},

		// Key rotation.
		{name: "rotation: a new key is accepted once it is in the JWKS",
			before: func(t *testing.T, e *hostileEnv) { e.srv.set(http.StatusOK, publicJWKS(t, rsaKey, ecKey, rotated)) },
			token:  signedBy(rotated, nil, nil), after: wantFetchesAndChecks(2, 1)},
		{name: "rotation: a new key refused before it was published is accepted within RefreshInterval",
			before: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.Verify(t.Context(), rotated.sign(t, e.claims(nil), nil))
				wantReason(t, err, "unknown signing key")
				e.srv.set(http.StatusOK, publicJWKS(t, rsaKey, ecKey, rotated))
				// That refusal's refetch spent the budget: the next one
				// comes RefreshInterval after it.
				_, err = e.v.Verify(t.Context(), rotated.sign(t, e.claims(nil), nil))
				wantReason(t, err, "unknown signing key")
				e.clock.Advance(DefaultRefreshInterval)
			},
			token: signedBy(rotated, nil, nil), after: wantFetchesAndChecks(3, 1)},
		{name: "rotation: a removed key is still accepted until CacheTTL",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.set(http.StatusOK, publicJWKS(t, rsaKey, rotated))
				e.clock.Advance(DefaultCacheTTL - time.Second)
			},
			token: signedBy(ecKey, nil, nil), after: wantFetchesAndChecks(1, 1)},
		{name: "rotation: a removed key is refused from CacheTTL on",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.set(http.StatusOK, publicJWKS(t, rsaKey, rotated))
				e.clock.Advance(DefaultCacheTTL)
			},
			token: signedBy(ecKey, nil, nil), want: authz.ErrUnauthenticated, reason: "unknown signing key",
			// The TTL's refetch; the unknown kid's is within RefreshInterval of it.
			after: wantFetchesAndChecks(2, 0)},
		{name: "rotation: a removed key is refused at once when a new kid's refetch drops it",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.set(http.StatusOK, publicJWKS(t, rsaKey, rotated))
				if _, err := e.v.Verify(t.Context(), rotated.sign(t, e.claims(nil), nil)); err != nil {
					t.Fatalf("token by the new key: %v", err)
				}
			},
			token: signedBy(ecKey, nil, nil), want: authz.ErrUnauthenticated, reason: "unknown signing key",
			after: wantFetchesAndChecks(2, 0)},

		// The JWKS down (its server stopped, so fetches fail to connect):
		// cached keys verify until the key set is twice CacheTTL old, and
		// a token that cannot be checked is a 503.
		{name: "JWKS down: a cached key verifies until twice CacheTTL",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.stop()
				e.clock.Advance(2*DefaultCacheTTL - time.Second)
			},
			token: signedBy(ecKey, nil, nil)},
		{name: "JWKS down: a cached key is a 503 from twice CacheTTL on",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.stop()
				e.clock.Advance(2 * DefaultCacheTTL)
			},
			token: signedBy(ecKey, nil, nil), want: authz.ErrUnavailable, after: wantFetchesAndChecks(1, 0)},
		{name: "JWKS down: a token verified before the outage is a 503 from twice CacheTTL on",
			before: func(t *testing.T, e *hostileEnv) {
				// The token cache gives up on it at CacheTTL already.
				token := ecKey.sign(t, e.claims(map[string]any{"exp": e.clock.Now().Add(time.Hour).Unix()}), nil)
				if _, err := e.v.Verify(t.Context(), token); err != nil {
					t.Fatalf("before the outage: %v", err)
				}
				e.srv.stop()
				e.clock.Advance(2 * DefaultCacheTTL)
				_, err := e.v.Verify(t.Context(), token)
				if !errors.Is(err, authz.ErrUnavailable) || errors.Is(err, authz.ErrUnauthenticated) {
					t.Fatalf("the same token: %v, want ErrUnavailable only", err)
				}
			},
			token: signedBy(rsaKey, nil, nil), want: authz.ErrUnavailable},
		{name: "JWKS down: an unknown kid is a 503",
			before: func(t *testing.T, e *hostileEnv) { e.srv.stop() },
			token:  signedBy(unpublished, nil, nil), want: authz.ErrUnavailable, after: wantFetchesAndChecks(1, 0)},
		{name: "JWKS down: an unknown kid is a 503 while the refetch is not due",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.stop()
				wantUnavailable(t, e, rotated, "the first unknown kid")
			},
			token: signedBy(unpublished, nil, nil), want: authz.ErrUnavailable},
		{name: "JWKS failing: an unknown kid is a 503 and does not refetch before RefreshInterval",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.set(http.StatusServiceUnavailable, nil)
				wantUnavailable(t, e, rotated, "the first unknown kid")
				e.clock.Advance(DefaultRefreshInterval - time.Second)
			},
			token: signedBy(unpublished, nil, nil), want: authz.ErrUnavailable, after: wantFetchesAndChecks(2, 0)},
		{name: "JWKS back: an unknown kid is a 401 again",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.set(http.StatusServiceUnavailable, nil)
				wantUnavailable(t, e, rotated, "an unknown kid while the JWKS fails")
				e.srv.set(http.StatusOK, ourJWKS)
				e.clock.Advance(DefaultRefreshInterval)
			},
			token: signedBy(unpublished, nil, nil), want: authz.ErrUnauthenticated, reason: "unknown signing key",
			after: wantFetchesAndChecks(3, 0)},
		{name: "JWKS back: a key set past the bound is replaced and verifies again",
			before: func(t *testing.T, e *hostileEnv) {
				e.srv.set(http.StatusServiceUnavailable, nil)
				e.clock.Advance(2 * DefaultCacheTTL)
				wantUnavailable(t, e, ecKey, "a cached key past the bound")
				e.srv.set(http.StatusOK, ourJWKS)
				e.clock.Advance(DefaultRefreshInterval)
			},
			token: signedBy(ecKey, nil, nil), after: wantFetchesAndChecks(3, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &hostileEnv{clock: newFakeClock(), srv: newJWKSServer(t, ourJWKS)}
			cfg := urlConfig(e.srv.URL)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e.v = newTestVerifier(t, cfg, e.clock)
			if tt.before != nil {
				tt.before(t, e)
			}
			// Only the case's own token counts in the checks after.
			e.checks = countChecks(e.v)
			token := tt.token(t, e)

			p, err := e.v.Verify(t.Context(), token)
			switch tt.want {
			case nil:
				if err != nil || p.Subject != "user-1" {
					t.Fatalf("Verify = %+v, %v; want subject user-1", p, err)
				}
			case authz.ErrUnauthenticated:
				if !errors.Is(err, authz.ErrUnauthenticated) || errors.Is(err, authz.ErrUnavailable) || !strings.HasSuffix(err.Error(), ": "+tt.reason) {
					t.Fatalf("Verify = %+v, %v; want ErrUnauthenticated (only) with reason %q", p, err, tt.reason)
				}
			case authz.ErrUnavailable:
				if !errors.Is(err, authz.ErrUnavailable) || errors.Is(err, authz.ErrUnauthenticated) {
					t.Fatalf("Verify = %+v, %v; want ErrUnavailable (only)", p, err)
				}
			default:
				t.Fatalf("bad case: want %v", tt.want)
			}
			if tt.want != nil && (p.Subject != "" || p.Groups != nil) {
				t.Fatalf("refused token yielded principal %+v", p)
			}
			if tt.after != nil {
				tt.after(t, e)
			}
		})
	}
	if got := site.requests.Load(); got != 0 {
		t.Fatalf("the attacker's site, named by jku and x5u, got %d requests", got)
	}
}
