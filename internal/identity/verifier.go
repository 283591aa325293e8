// Package identity verifies the bearer JWTs that identify tenantgate's
// callers against the issuer's published key set (JWKS), and maps a verified
// token to the user ID that authorization decisions are made for and the
// groups that platform roles are granted to.
//
// The token never chooses how it is checked: its "alg" must be on the
// configured allow-list (asymmetric algorithms only) and fit the type of the
// key its "kid" names, and key URLs in its header (jku, x5u, jwk) are
// ignored. Every rejection wraps authz.ErrUnauthenticated with a short reason
// that is safe to show the client; details go to the debug log.
//
// When the JWKS URL cannot be fetched, tokens signed by cached keys keep
// verifying until the key set is twice Config.CacheTTL old (20 minutes by
// default) counted from the last successful fetch; after that, and for a
// token whose kid the failed refetch could not look up, Verify fails with
// authz.ErrUnavailable: never a pass, and not a 401, since the token may be
// good.
package identity

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// maxTokenBytes bounds the work an unauthenticated caller can cause; even
// tokens stuffed with group claims stay far below it.
const maxTokenBytes = 64 << 10

// Limits on Config.GroupsClaim. A claim over either yields no groups at
// all: reading part of it would make the caller's rights depend on the
// order the issuer lists groups in, and a token carrying that many is
// misconfigured or forged for the purpose.
const (
	maxGroups     = 256
	maxGroupBytes = 256
)

// Principal is the verified caller.
type Principal struct {
	// Subject is the user ID, taken from Config.SubjectClaim.
	Subject string
	// Groups are the caller's groups, taken from Config.GroupsClaim: free
	// of duplicates and empty names, compared case-sensitively, nil when
	// the token carries none.
	Groups []string
}

// Verifier checks bearer tokens. It is safe for concurrent use and runs no
// goroutines of its own: key set refreshes happen lazily inside Verify.
type Verifier struct {
	cfg Config
	// allowed maps each allowed algorithm to its key type check.
	allowed map[string]func(crypto.PublicKey) bool
	// claims and cognitoClaims are the claim checks for a token with an
	// "aud" claim and for one without (see claimChecks).
	claims, cognitoClaims []jwt.ValidateOption
	log                   *slog.Logger
	now                   func() time.Time

	keys atomic.Pointer[keySet]
	// tokens remembers verified tokens; nil when Config turns it off.
	tokens *tokenCache
	// onSignatureCheck, when set (by tests), is called before each
	// signature check.
	onSignatureCheck func()
	// refetchMu guards lastRefetch, when the last refetch started, and
	// inflight, closed when the running refetch ends (nil when none runs).
	// The initial load does not count as a refetch, so a key rotated in
	// just after start is picked up at once.
	refetchMu   sync.Mutex
	lastRefetch time.Time
	inflight    chan struct{}
	// refetchFailed is whether the latest refetch failed: the issuer's
	// key set cannot be read now, so a kid missing from ours may be one
	// it has rotated in.
	refetchFailed atomic.Bool
}

// New validates cfg and loads the key set: a JWKS file is read once, a JWKS
// URL is fetched now and refreshed later (see Config). A URL that cannot be
// fetched fails New with an error wrapping authz.ErrUnavailable, because a
// gateway that can verify nothing must not report ready; a bad file or
// configuration wraps authz.ErrInvalid.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	return newVerifier(ctx, cfg, time.Now)
}

func newVerifier(ctx context.Context, cfg Config, now func() time.Time) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v := &Verifier{
		cfg:     cfg,
		allowed: make(map[string]func(crypto.PublicKey) bool, len(cfg.Algorithms)),
		log:     cfg.Logger,
		now:     now,
	}
	for _, alg := range cfg.Algorithms {
		v.allowed[alg] = keyFits[alg]
	}
	if cfg.TokenCacheSize > 0 {
		v.tokens = newTokenCache(cfg.TokenCacheSize)
	}
	v.claims, v.cognitoClaims = claimChecks(cfg, now)
	ks, err := v.readKeys(ctx)
	if err != nil {
		kind := authz.ErrInvalid
		if cfg.JWKSURL != "" {
			kind = authz.ErrUnavailable
		}
		return nil, fmt.Errorf("identity: %w: %w", kind, err)
	}
	v.keys.Store(ks)
	v.log.InfoContext(ctx, "jwks loaded", "keys", len(ks.keys))
	return v, nil
}

// rejection is why a token is refused, in words safe to show the client.
// It wraps authz.ErrUnauthenticated.
type rejection struct{ reason string }

func reject(reason string) error { return &rejection{reason: reason} }

func (r *rejection) Error() string { return authz.ErrUnauthenticated.Error() + ": " + r.reason }

func (r *rejection) Unwrap() error { return authz.ErrUnauthenticated }

// Verify checks raw (the bearer token without the "Bearer " prefix) and
// returns the caller it identifies. A token that verified before is
// answered from the token cache (see Config.TokenCacheSize) while its
// expiry, its key set's CacheTTL and its signing key allow. A refused token
// is an error wrapping authz.ErrUnauthenticated; one that cannot be checked
// because the JWKS cannot be fetched (see Config.CacheTTL) wraps
// authz.ErrUnavailable instead.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	switch {
	case raw == "":
		return Principal{}, reject("missing token")
	case len(raw) > maxTokenBytes:
		return Principal{}, reject("token too large")
	case !compactChars(raw):
		return Principal{}, reject("malformed token")
	}
	if v.tokens == nil {
		p, _, err := v.verify(ctx, raw)
		return p, err
	}
	h := sha256.Sum256([]byte(raw))
	if p, ok := v.cached(h); ok {
		return p, nil
	}
	p, entry, err := v.verify(ctx, raw)
	if err != nil {
		return Principal{}, err
	}
	entry.hash = h
	entry.principal.Groups = slices.Clone(p.Groups)
	v.tokens.put(entry, v.now())
	return p, nil
}

// compactChars reports whether raw holds only what a compact JWS may:
// base64url without padding (RFC 7515 section 2) and the dots between the
// parts. jwx also decodes padded and standard base64 and trims white
// space, which would give one token many spellings, each a token cache
// entry of its own.
func compactChars(raw string) bool {
	for i := range len(raw) {
		switch c := raw[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// cached returns the principal remembered for the token hashed to h, if
// the entry is alive and the current key set still gives its kid the key
// that verified it (a refresh may have retired or replaced it).
func (v *Verifier) cached(h tokenHash) (Principal, bool) {
	e, ok := v.tokens.get(h, v.now())
	if !ok {
		return Principal{}, false
	}
	if k, err := v.keys.Load().find(e.kid); err != nil || k.fp != e.key {
		v.tokens.remove(h)
		return Principal{}, false
	}
	// The entry keeps its own groups, so that a caller who changes the
	// slice it was handed cannot change what the next hit is granted.
	p := e.principal
	p.Groups = slices.Clone(p.Groups)
	return p, true
}

// verify does the full check of a token and, when it passes, also returns
// its cache entry (all but the hash).
func (v *Verifier) verify(ctx context.Context, raw string) (Principal, cachedToken, error) {
	fail := func(err error) (Principal, cachedToken, error) { return Principal{}, cachedToken{}, err }
	msg, err := jws.ParseString(raw, jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		v.log.DebugContext(ctx, "token rejected", "reason", "malformed", "error", err)
		return fail(reject("malformed token"))
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	alg, ok := hdr.Algorithm()
	fits := v.allowed[alg.String()]
	if !ok || fits == nil {
		return fail(reject("algorithm not allowed"))
	}
	if err := v.checkType(hdr); err != nil {
		return fail(err)
	}
	kid, _ := hdr.KeyID()
	key, ks, err := v.key(ctx, kid)
	if err != nil {
		return fail(err)
	}
	if (key.alg != "" && key.alg != alg.String()) || !fits(key.pub) {
		return fail(reject("algorithm does not fit the signing key"))
	}
	// The key and algorithm are ours. Which claim checks apply depends on
	// the claims, so they run once the token is parsed.
	if v.onSignatureCheck != nil {
		v.onSignatureCheck()
	}
	tok, err := jwt.Parse([]byte(raw), jwt.WithKey(alg, key.pub), jwt.WithValidate(false))
	if err != nil {
		v.log.DebugContext(ctx, "token rejected", "reason", "signature or claims", "kid", kid, "error", err)
		if errors.Is(err, jws.VerifyError()) {
			return fail(reject("invalid signature"))
		}
		return fail(reject("malformed claims"))
	}
	checks := v.claims
	if !tok.Has(jwt.AudienceKey) {
		checks = v.cognitoClaims
	}
	if err := jwt.Validate(tok, checks...); err != nil {
		v.log.DebugContext(ctx, "token rejected", "reason", "claims", "kid", kid, "error", err)
		return fail(claimsRejection(err))
	}
	p, err := v.principal(ctx, tok)
	if err != nil {
		return fail(err)
	}
	// The entry keeps the header kid, not the key's, so that a token
	// without one stops hitting once the set holds more than one key.
	exp, _ := tok.Expiration() // required by the claim checks
	entry := cachedToken{principal: p, kid: kid, key: key.fp, until: exp.Add(v.cfg.Leeway)}
	if v.cfg.JWKSURL != "" {
		if stale := ks.fetchedAt.Add(v.cfg.CacheTTL); stale.Before(entry.until) {
			entry.until = stale
		}
	}
	return p, entry, nil
}

// Authenticate is Verify in the shape the gateway asks for.
func (v *Verifier) Authenticate(ctx context.Context, raw string) (authz.Principal, error) {
	p, err := v.Verify(ctx, raw)
	if err != nil {
		return authz.Principal{}, err
	}
	return authz.Principal{Subject: p.Subject, Groups: p.Groups}, nil
}

// key finds the key a token names, and the key set it is in, refetching a
// URL key set once when the kid is unknown, since the issuer may have
// rotated to a key we have not seen. While the JWKS cannot be fetched, a
// key set past twice CacheTTL, and a kid the last refetch could not look
// up, are errors wrapping authz.ErrUnavailable: whether the token is good
// cannot be told, which is neither a pass nor the caller's fault.
func (v *Verifier) key(ctx context.Context, kid string) (publicKey, *keySet, error) {
	ks := v.keys.Load()
	if v.cfg.JWKSURL == "" {
		k, err := ks.find(kid)
		return k, ks, err
	}
	if v.now().Sub(ks.fetchedAt) >= v.cfg.CacheTTL {
		// Once the keys are too old to use, a refetch in flight is worth
		// waiting for; before, the cached keys answer meanwhile.
		v.refetch(ctx, "cache ttl", v.tooOld(ks))
		ks = v.keys.Load()
		if v.tooOld(ks) {
			v.log.DebugContext(ctx, "token not verified", "reason", "jwks too old", "fetched_at", ks.fetchedAt)
			return publicKey{}, ks, errKeysTooOld
		}
	}
	k, err := ks.find(kid)
	if !errors.Is(err, errUnknownKID) {
		return k, ks, err
	}
	v.refetch(ctx, "unknown kid", true)
	ks = v.keys.Load()
	k, err = ks.find(kid)
	if errors.Is(err, errUnknownKID) && v.refetchFailed.Load() {
		v.log.DebugContext(ctx, "token not verified", "reason", "unknown kid while the jwks cannot be fetched", "kid", kid)
		return k, ks, errKIDUnverifiable
	}
	return k, ks, err
}

// tooOld reports whether ks is at least twice CacheTTL old, and so no
// longer used: it fell due CacheTTL ago and every refetch since failed.
// (The doubling is done as a subtraction, which cannot overflow.)
func (v *Verifier) tooOld(ks *keySet) bool {
	age := v.now().Sub(ks.fetchedAt)
	return age >= v.cfg.CacheTTL && age-v.cfg.CacheTTL >= v.cfg.CacheTTL
}

// principal takes the user ID and groups from a token whose claims have
// passed.
func (v *Verifier) principal(ctx context.Context, tok jwt.Token) (Principal, error) {
	claim := v.cfg.SubjectClaim
	if !tok.Has(claim) {
		return Principal{}, reject("token has no subject")
	}
	var sub string
	if err := tok.Get(claim, &sub); err != nil {
		return Principal{}, reject("subject is not a string")
	}
	if err := authz.ValidateUserID(sub); err != nil {
		return Principal{}, reject("subject is not a valid user id")
	}
	return Principal{Subject: sub, Groups: v.groups(ctx, tok)}, nil
}

// groups reads Config.GroupsClaim: a JSON array of strings, or one string
// holding a whitespace-separated list (as some issuers send, like OAuth's
// "scope"). A claim of any other shape, or over maxGroups or maxGroupBytes,
// yields no groups and a warning rather than a rejection: groups only add
// rights, so the token still proves who the caller is, and the warning
// tells the operator that the issuer is not sending what was configured.
func (v *Verifier) groups(ctx context.Context, tok jwt.Token) []string {
	claim := v.cfg.GroupsClaim
	if claim == "" || !tok.Has(claim) {
		return nil
	}
	// Get into an any fails only for a null claim.
	var value any
	if tok.Get(claim, &value) != nil {
		value = nil
	}
	var names []string
	switch value := value.(type) {
	case string:
		for name := range strings.FieldsSeq(value) {
			if len(names) == maxGroups {
				return v.tooManyGroups(ctx, claim)
			}
			names = append(names, name)
		}
	case []string: // a registered claim such as "aud"
		names = value
	case []any:
		if len(value) > maxGroups {
			return v.tooManyGroups(ctx, claim)
		}
		names = make([]string, 0, len(value))
		for _, e := range value {
			name, ok := e.(string)
			if !ok {
				v.log.WarnContext(ctx, "groups claim has the wrong type; reading no groups", "claim", claim, "type", "array holding "+jsonType(e))
				return nil
			}
			names = append(names, name)
		}
	default:
		v.log.WarnContext(ctx, "groups claim has the wrong type; reading no groups", "claim", claim, "type", jsonType(value))
		return nil
	}
	if len(names) > maxGroups {
		return v.tooManyGroups(ctx, claim)
	}
	var groups []string
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if len(name) > maxGroupBytes {
			v.log.WarnContext(ctx, "groups claim holds a group name that is too long; reading no groups", "claim", claim, "bytes", len(name), "limit", maxGroupBytes)
			return nil
		}
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		groups = append(groups, name)
	}
	return groups
}

func (v *Verifier) tooManyGroups(ctx context.Context, claim string) []string {
	v.log.WarnContext(ctx, "groups claim holds too many groups; reading no groups", "claim", claim, "limit", maxGroups)
	return nil
}

// jsonType names the JSON type of a decoded claim value, for the log.
func jsonType(value any) string {
	switch value.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case []any, []string:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", value)
}

// checkType keeps a token of another kind (RFC 8725 section 3.11) from
// passing merely because the same issuer signed it.
func (v *Verifier) checkType(hdr jws.Headers) error {
	if v.cfg.TokenType == "" {
		return nil
	}
	typ, _ := hdr.Type()
	if mediaType(typ) != mediaType(v.cfg.TokenType) {
		return reject("wrong token type")
	}
	return nil
}

// mediaType puts a "typ" value in the form RFC 7515 section 4.1.9 compares:
// media types are case-insensitive, and "application/" may be left out of
// one that has no other "/".
func mediaType(typ string) string {
	typ = strings.ToLower(typ)
	if !strings.Contains(typ, "/") {
		return "application/" + typ
	}
	return typ
}
