package identity

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// maxJWKSBytes bounds a key set document; real ones are a few kilobytes.
const maxJWKSBytes = 1 << 20

// maxRedirects is what net/http allows when CheckRedirect is nil; setting
// our own check would otherwise lift that bound.
const maxRedirects = 10

// publicKey is one usable entry of a key set.
type publicKey struct {
	kid string
	// alg is the JWK's own "alg"; when set, tokens must use exactly it.
	alg string
	pub crypto.PublicKey
	// fp tells this key from any other, across key set refreshes.
	fp keyFingerprint
}

// keyFingerprint is the SHA-256 of a key's "alg" and its public key in
// PKIX form: what decides which tokens the key accepts.
type keyFingerprint [sha256.Size]byte

// keySet is an immutable snapshot; a refresh swaps in a new one.
type keySet struct {
	keys      []publicKey
	byKID     map[string]publicKey
	fetchedAt time.Time
}

var (
	errNoKID      = reject("token has no key id")
	errUnknownKID = reject("unknown signing key")
)

// The errors of a token that cannot be verified because the JWKS cannot be
// fetched (see Verifier.key). They wrap authz.ErrUnavailable and not
// authz.ErrUnauthenticated: the token may be good.
var (
	errKeysTooOld      = fmt.Errorf("identity: %w: the signing keys are out of date and the JWKS cannot be fetched", authz.ErrUnavailable)
	errKIDUnverifiable = fmt.Errorf("identity: %w: unknown signing key, and the JWKS cannot be fetched to look it up", authz.ErrUnavailable)
)

func (s *keySet) find(kid string) (publicKey, error) {
	if kid == "" {
		// Without a kid the choice of key would be a guess, so only a
		// single-key set can do without it.
		if len(s.keys) == 1 {
			return s.keys[0], nil
		}
		return publicKey{}, errNoKID
	}
	k, ok := s.byKID[kid]
	if !ok {
		return publicKey{}, errUnknownKID
	}
	return k, nil
}

// parseKeySet keeps the asymmetric signing keys of a JWKS document and skips
// the rest, so one odd entry (an encryption key, a post-quantum key jwx does
// not know) does not take the whole issuer down.
func parseKeySet(data []byte, fetchedAt time.Time, log *slog.Logger) (*keySet, error) {
	set, err := jwk.Parse(data, jwk.WithStrictKeySetParsing(false))
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	ks := &keySet{byKID: make(map[string]publicKey), fetchedAt: fetchedAt}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		pk, err := usableKey(k)
		if err != nil {
			log.Warn("jwks key skipped", "kid", kid, "reason", err)
			continue
		}
		if private, _ := jwk.IsPrivateKey(k); private {
			log.Warn("jwks publishes private key material; only its public part is used", "kid", kid)
		}
		if kid != "" {
			if _, dup := ks.byKID[kid]; dup {
				log.Warn("jwks key skipped", "kid", kid, "reason", "duplicate kid")
				continue
			}
			ks.byKID[kid] = pk
		}
		ks.keys = append(ks.keys, pk)
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("parse jwks: no usable signing keys")
	}
	return ks, nil
}

func usableKey(k jwk.Key) (publicKey, error) {
	// jwx parses what it cannot use (unknown kty, RSA under 2048 bits)
	// into placeholders.
	if uk, ok := k.(jwk.UnsupportedKey); ok {
		return publicKey{}, uk.Reason()
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return publicKey{}, fmt.Errorf("key use is %q", use)
	}
	pubJWK, err := jwk.PublicKeyOf(k)
	if err != nil {
		return publicKey{}, err
	}
	var raw any
	if err := jwk.Export(pubJWK, &raw); err != nil {
		return publicKey{}, err
	}
	// This also refuses "oct" keys, whose raw form is a byte slice: an
	// HMAC secret in a public document would let anyone mint tokens.
	pub := crypto.PublicKey(raw)
	if !fitsAny(pub) {
		return publicKey{}, fmt.Errorf("not a supported public key (%T)", raw)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return publicKey{}, err
	}
	pk := publicKey{pub: pub}
	pk.kid, _ = k.KeyID()
	if alg, ok := k.Algorithm(); ok {
		pk.alg = alg.String()
	}
	pk.fp = sha256.Sum256(append([]byte(pk.alg+"\x00"), der...))
	return pk, nil
}

func fitsAny(pub crypto.PublicKey) bool {
	for _, fits := range keyFits {
		if fits(pub) {
			return true
		}
	}
	return false
}

// readKeys reads the configured key set, from the file or the URL.
//
// A URL's key set is fetched and cached here, not by jwk.Cache, although
// jwk.Cache could do the redirect policy (through our HTTP client) and the
// size bound (jwk.WithMaxFetchBodySize). It cannot keep the other rules:
//   - It refreshes on goroutines of its own, on a wall-clock schedule taken
//     from Cache-Control within its minimum and maximum intervals. Our cache
//     is refreshed by the Verify that finds it older than CacheTTL, so a
//     Verifier needs neither goroutines nor a Close, and a refresh counts
//     against the same RefreshInterval budget as a refetch on an unknown kid.
//   - Registering a URL waits for the first successful fetch: a failed one
//     goes to an error sink and is retried only after the minimum interval,
//     so New could not fail at once with the cause (refused redirect, status,
//     size). Registering without waiting and then calling Refresh fetches
//     twice, because registration already schedules a fetch.
//   - Refresh fetches on the cache's context, not the caller's, so the
//     per-fetch HTTPTimeout would have to move to the HTTP client.
//   - It hands back a jwk.Set, and we would still have to notice each new one
//     to skip odd keys and index the rest by kid.
//
// What would be left of it is a goroutine pool around one GET, so the fetch
// below stays ours.
func (v *Verifier) readKeys(ctx context.Context) (*keySet, error) {
	now := v.now()
	if v.cfg.JWKSFile != "" {
		data, err := os.ReadFile(v.cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("read jwks file: %w", err)
		}
		return parseKeySet(data, now, v.log)
	}
	data, err := v.fetch(ctx)
	if err != nil {
		return nil, err
	}
	return parseKeySet(data, now, v.log)
}

func (v *Verifier) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: unexpected status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch jwks: document larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}

// jwksClient copies base (nil: a plain client), so a client shared with
// the rest of the process keeps its own redirect policy, and makes the copy
// follow redirects only to the JWKS URL's scheme and host: the https-only
// rule checked by Validate must not be undone by a redirect to plain http
// or to a host nobody configured.
func jwksClient(base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	c.CheckRedirect = sameOrigin(c.CheckRedirect)
	return c
}

func sameOrigin(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		from, to := via[0].URL, req.URL
		if to.Scheme != from.Scheme || !strings.EqualFold(to.Host, from.Host) {
			return fmt.Errorf("redirect from %s://%s to %s://%s refused: the JWKS must stay on its configured scheme and host", from.Scheme, from.Host, to.Scheme, to.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
}

// refetch replaces the key set from the URL, at most once per
// RefreshInterval. A caller that finds a refetch running shares it: with
// wait it waits for the outcome (or for its ctx to end), without it keeps
// using the current keys. A caller refused by the interval returns at once
// and leaves the interval's start alone, so a flood of unknown kids costs
// one fetch per interval and never postpones the next one.
func (v *Verifier) refetch(ctx context.Context, reason string, wait bool) {
	done, mine := v.claimRefetch()
	switch {
	case mine:
		v.runRefetch(ctx, reason, done)
	case wait && done != nil:
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// claimRefetch returns the running refetch's done channel; or, when none
// runs and the interval has passed, starts one that the caller must run
// (mine); or nil when the caller must do without.
func (v *Verifier) claimRefetch() (done chan struct{}, mine bool) {
	v.refetchMu.Lock()
	defer v.refetchMu.Unlock()
	if v.inflight != nil {
		return v.inflight, false
	}
	now := v.now()
	if now.Sub(v.lastRefetch) < v.cfg.RefreshInterval {
		return nil, false
	}
	v.lastRefetch = now
	v.inflight = make(chan struct{})
	return v.inflight, true
}

func (v *Verifier) runRefetch(ctx context.Context, reason string, done chan struct{}) {
	defer func() {
		v.refetchMu.Lock()
		v.inflight = nil
		v.refetchMu.Unlock()
		close(done)
	}()
	// A caller that gives up must not waste the refetch budget of everyone
	// else, so the fetch outlives its request (HTTPTimeout still bounds it).
	ks, err := v.readKeys(context.WithoutCancel(ctx))
	if err != nil {
		v.refetchFailed.Store(true)
		v.log.WarnContext(ctx, "jwks refresh failed; keeping the previous keys", "reason", reason, "error", err)
		return
	}
	// The keys first: a caller that sees the failure cleared must find
	// them.
	v.keys.Store(ks)
	v.refetchFailed.Store(false)
	v.log.InfoContext(ctx, "jwks refreshed", "reason", reason, "keys", len(ks.keys))
}
