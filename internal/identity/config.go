package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultSubjectClaim    = "sub"
	DefaultLeeway          = 30 * time.Second
	DefaultRefreshInterval = 10 * time.Second
	DefaultCacheTTL        = 10 * time.Minute
	DefaultHTTPTimeout     = 5 * time.Second
	DefaultTokenCacheSize  = 10_000
)

// maxLeeway bounds clock skew tolerance: a leeway of hours would quietly
// turn expired tokens back into valid ones.
const maxLeeway = 5 * time.Minute

// defaultAlgorithms is the allow-list used when Config.Algorithms is empty:
// every supported algorithm except the fully specified "Ed25519" name
// (RFC 9864), which few issuers emit yet.
var defaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// keyFits maps every algorithm this package accepts to the only key type
// that may verify it. It is both the allow-list of what Config.Algorithms
// may contain (so "none" and HMAC can never be configured) and the check
// that stops a token from choosing how a published key is interpreted.
var keyFits = map[string]func(crypto.PublicKey) bool{
	"RS256":   isRSA,
	"RS384":   isRSA,
	"RS512":   isRSA,
	"PS256":   isRSA,
	"PS384":   isRSA,
	"PS512":   isRSA,
	"ES256":   isCurve(elliptic.P256()),
	"ES384":   isCurve(elliptic.P384()),
	"ES512":   isCurve(elliptic.P521()),
	"EdDSA":   isEd25519,
	"Ed25519": isEd25519,
}

func isRSA(k crypto.PublicKey) bool {
	_, ok := k.(*rsa.PublicKey)
	return ok
}

func isCurve(c elliptic.Curve) func(crypto.PublicKey) bool {
	return func(k crypto.PublicKey) bool {
		ec, ok := k.(*ecdsa.PublicKey)
		return ok && ec.Curve == c
	}
}

func isEd25519(k crypto.PublicKey) bool {
	_, ok := k.(ed25519.PublicKey)
	return ok
}

// Config says where the signing keys come from and what a token must claim.
// Zero durations, an empty SubjectClaim and empty Algorithms take the
// defaults above.
type Config struct {
	// JWKSURL or JWKSFile (exactly one) locates the issuer's public key set.
	JWKSURL  string
	JWKSFile string
	// Issuer must equal the token's "iss".
	Issuer string
	// Audience must be one of the token's "aud" values, or, for a token
	// without "aud" (a Cognito access token), equal its "client_id" while
	// "token_use" is "access".
	Audience string
	// SubjectClaim names the claim holding the user ID.
	SubjectClaim string
	// GroupsClaim names the claim holding the caller's groups, which
	// platform roles are granted to: e.g. "cognito:groups" (Cognito),
	// "groups" (Okta, Entra ID, Auth0 with a namespaced claim) or "roles".
	// The name is used exactly as given, with no path syntax, because
	// namespaced claim names such as "https://example.com/groups" contain
	// dots. Empty reads no groups.
	GroupsClaim string
	// TokenUse, when set ("id" or "access"), must equal the token's
	// "token_use" claim, so that a Cognito-style issuer's ID tokens and
	// access tokens cannot stand in for each other; empty accepts either.
	TokenUse string
	// TokenType, when set, must equal the JOSE header "typ" (RFC 8725
	// explicit typing, e.g. "at+jwt" for RFC 9068 access tokens), compared
	// as a media type: case-insensitively, "application/" optional.
	TokenType string
	// Algorithms is the allow-list of signature algorithms, asymmetric only:
	// RS256/384/512, PS256/384/512, ES256/384/512, EdDSA and Ed25519. Empty
	// means all of them but Ed25519.
	Algorithms []string
	// Leeway tolerates clock skew when checking exp, nbf and iat; at most
	// five minutes.
	Leeway time.Duration
	// RefreshInterval is the least time between two JWKS refetches, so a
	// flood of tokens with made-up key IDs cannot hammer the issuer. It is
	// also how long a key the issuer rotates in may go unrecognised.
	RefreshInterval time.Duration
	// CacheTTL is the age after which a fetched JWKS is refetched, by the
	// first Verify that notices; meanwhile, and while that fetch fails
	// (retried at most once per RefreshInterval), the cached keys keep
	// serving, until the key set is twice CacheTTL old. From then on every
	// token not in the token cache is refused with authz.ErrUnavailable
	// until a fetch succeeds; the token cache never serves past CacheTTL
	// either. So when the JWKS endpoint goes down, tokens signed by cached
	// keys verify for at most twice CacheTTL after the last successful
	// fetch, which was before the outage. A key the issuer retires stops
	// verifying after at most CacheTTL while its JWKS can be fetched.
	CacheTTL time.Duration
	// TokenCacheSize bounds how many verified tokens are remembered (by
	// their SHA-256, never the token itself), so a token seen again costs a
	// hash lookup instead of a signature check; the least recently used is
	// evicted when full. Zero means DefaultTokenCacheSize, negative turns
	// the cache off. Only tokens that passed are cached, and an entry is
	// never served once the token has expired (exp plus Leeway), once the
	// key set that verified it is older than CacheTTL, or once the current
	// key set no longer gives the token's kid the same key.
	TokenCacheSize int
	// HTTPTimeout bounds one JWKS fetch.
	HTTPTimeout time.Duration
	// HTTPClient fetches the JWKS; nil means a plain client. The verifier
	// uses a copy that follows redirects only to the URL's scheme and host.
	HTTPClient *http.Client
	// Logger receives key set refreshes and rejection details; nil discards.
	Logger *slog.Logger
}

// Validate reports the first problem with c, wrapping authz.ErrInvalid.
func (c Config) Validate() error {
	switch {
	case (c.JWKSURL == "") == (c.JWKSFile == ""):
		return invalidConfig("set exactly one of the JWKS URL and the JWKS file")
	case c.Issuer == "":
		return invalidConfig("issuer is required")
	case c.Audience == "":
		return invalidConfig("audience is required")
	case c.Leeway < 0 || c.Leeway > maxLeeway:
		return invalidConfig(fmt.Sprintf("leeway must be between 0 and %s", maxLeeway))
	case c.RefreshInterval < 0 || c.CacheTTL < 0 || c.HTTPTimeout < 0:
		return invalidConfig("durations must not be negative")
	case c.TokenUse != "" && c.TokenUse != "id" && c.TokenUse != "access":
		return invalidConfig(fmt.Sprintf("token use %q: want \"id\", \"access\" or empty for either", c.TokenUse))
	}
	if c.JWKSURL != "" {
		if err := validateJWKSURL(c.JWKSURL); err != nil {
			return err
		}
	}
	for _, alg := range c.Algorithms {
		if keyFits[alg] == nil {
			return invalidConfig(fmt.Sprintf("algorithm %q is not allowed (want asymmetric: %s)", alg, strings.Join(supportedAlgorithms(), ", ")))
		}
	}
	return nil
}

// validateJWKSURL requires https, because whoever can change the key set in
// transit can mint tokens; plain http is left for loopback, which never
// crosses a network.
func validateJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalidConfig(fmt.Sprintf("JWKS URL %q is not an absolute http(s) URL", raw))
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return invalidConfig(fmt.Sprintf("JWKS URL %q must use https (plain http is allowed only to localhost, 127.0.0.0/8 or ::1)", raw))
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

func invalidConfig(msg string) error {
	return fmt.Errorf("identity config: %w: %s", authz.ErrInvalid, msg)
}

func supportedAlgorithms() []string {
	algs := make([]string, 0, len(keyFits))
	for alg := range keyFits {
		algs = append(algs, alg)
	}
	slices.Sort(algs)
	return algs
}

func (c Config) withDefaults() Config {
	if c.SubjectClaim == "" {
		c.SubjectClaim = DefaultSubjectClaim
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = defaultAlgorithms
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.TokenCacheSize == 0 {
		c.TokenCacheSize = DefaultTokenCacheSize
	}
	c.HTTPClient = jwksClient(c.HTTPClient)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
