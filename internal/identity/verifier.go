// Package identity verifies the bearer JWTs that identify tenantgate's
// callers against the issuer's published key set (JWKS), and maps a verified
// token to the user ID that authorization decisions are made for.
//
// The token never chooses how it is checked: its "alg" must be on the
// configured allow-list (asymmetric algorithms only) and fit the type of the
// key its "kid" names, and key URLs in its header (jku, x5u, jwk) are
// ignored. Every rejection wraps authz.ErrUnauthenticated with a short reason
// that is safe to show the client; details go to the debug log.
package identity

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
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

// Principal is the verified caller.
type Principal struct {
	// Subject is the user ID, taken from Config.SubjectClaim.
	Subject string
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
	// refetchMu guards lastRefetch, when the last refetch started, and
	// inflight, closed when the running refetch ends (nil when none runs).
	// The initial load does not count as a refetch, so a key rotated in
	// just after start is picked up at once.
	refetchMu   sync.Mutex
	lastRefetch time.Time
	inflight    chan struct{}
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
// returns the caller it identifies.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	switch {
	case raw == "":
		return Principal{}, reject("missing token")
	case len(raw) > maxTokenBytes:
		return Principal{}, reject("token too large")
	}
	msg, err := jws.ParseString(raw, jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		v.log.DebugContext(ctx, "token rejected", "reason", "malformed", "error", err)
		return Principal{}, reject("malformed token")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	alg, ok := hdr.Algorithm()
	fits := v.allowed[alg.String()]
	if !ok || fits == nil {
		return Principal{}, reject("algorithm not allowed")
	}
	if err := v.checkType(hdr); err != nil {
		return Principal{}, err
	}
	kid, _ := hdr.KeyID()
	key, err := v.key(ctx, kid)
	if err != nil {
		return Principal{}, err
	}
	if (key.alg != "" && key.alg != alg.String()) || !fits(key.pub) {
		return Principal{}, reject("algorithm does not fit the signing key")
	}
	// The key and algorithm are ours. Which claim checks apply depends on
	// the claims, so they run once the token is parsed.
	tok, err := jwt.Parse([]byte(raw), jwt.WithKey(alg, key.pub), jwt.WithValidate(false))
	if err != nil {
		v.log.DebugContext(ctx, "token rejected", "reason", "signature or claims", "kid", kid, "error", err)
		if errors.Is(err, jws.VerifyError()) {
			return Principal{}, reject("invalid signature")
		}
		return Principal{}, reject("malformed claims")
	}
	checks := v.claims
	if !tok.Has(jwt.AudienceKey) {
		checks = v.cognitoClaims
	}
	if err := jwt.Validate(tok, checks...); err != nil {
		v.log.DebugContext(ctx, "token rejected", "reason", "claims", "kid", kid, "error", err)
		return Principal{}, claimsRejection(err)
	}
	return v.principal(tok)
}

// Authenticate is Verify reduced to the caller's user ID, the shape the
// gateway asks for.
func (v *Verifier) Authenticate(ctx context.Context, raw string) (string, error) {
	p, err := v.Verify(ctx, raw)
	return p.Subject, err
}

// key finds the key a token names, refetching a URL key set once when the
// kid is unknown, since the issuer may have rotated to a key we have not seen.
func (v *Verifier) key(ctx context.Context, kid string) (publicKey, error) {
	ks := v.keys.Load()
	if v.cfg.JWKSURL == "" {
		return ks.find(kid)
	}
	if v.now().Sub(ks.fetchedAt) >= v.cfg.CacheTTL {
		v.refetch(ctx, "cache ttl", false)
		ks = v.keys.Load()
	}
	k, err := ks.find(kid)
	if !errors.Is(err, errUnknownKID) {
		return k, err
	}
	v.refetch(ctx, "unknown kid", true)
	return v.keys.Load().find(kid)
}

// principal takes the user ID from a token whose claims have passed.
func (v *Verifier) principal(tok jwt.Token) (Principal, error) {
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
	return Principal{Subject: sub}, nil
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
