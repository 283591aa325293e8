package testutil

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

// oidcTokenTTL is the life of the tokens the test provider issues: longer
// than any browser test.
const oidcTokenTTL = time.Hour

// OIDCProvider is an OpenID Connect identity provider for browser tests of
// a sign-in with the authorization code flow and PKCE (S256), as a public
// client. It approves every authorization request at once, as one user, and
// answers the code exchange with a token of Issuer, whose issuer is the
// provider's URL. Its discovery document is at
// URL/.well-known/openid-configuration.
type OIDCProvider struct {
	URL    string
	Issuer *devenv.Issuer

	tb       testing.TB
	clientID string
	user     string

	mu    sync.Mutex
	codes map[string]authorization
}

// authorization is what an authorization code was issued for, which the
// code exchange must match.
type authorization struct{ redirectURI, challenge string }

// NewOIDCProvider serves a provider for clientID on a free loopback port
// until tb ends. Every sign-in is user's; tokens carry audience.
func NewOIDCProvider(tb testing.TB, clientID, audience, user string) *OIDCProvider {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &OIDCProvider{URL: "http://" + ln.Addr().String(), tb: tb, clientID: clientID, user: user, codes: map[string]authorization{}}
	if p.Issuer, err = devenv.GenerateIssuer(p.URL, audience); err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET "+devenv.JWKSPath, p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("OPTIONS /token", p.token)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	return p
}

func (p *OIDCProvider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeOIDCJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.URL,
		"authorization_endpoint":                p.URL + "/authorize",
		"token_endpoint":                        p.URL + "/token",
		"jwks_uri":                              p.URL + devenv.JWKSPath,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

func (p *OIDCProvider) jwks(w http.ResponseWriter, _ *http.Request) {
	jwks, err := p.Issuer.JWKS()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(jwks)
}

// authorize approves at once: the redirect back carries a code and the
// client's state.
func (p *OIDCProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("client_id") != p.clientID:
		p.refuse(w, "authorize: client_id %q, want %q", q.Get("client_id"), p.clientID)
		return
	case q.Get("response_type") != "code":
		p.refuse(w, "authorize: response_type %q, want code", q.Get("response_type"))
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		p.refuse(w, "authorize: PKCE with S256 is required, got method %q", q.Get("code_challenge_method"))
		return
	case err != nil || !redirect.IsAbs():
		p.refuse(w, "authorize: redirect_uri %q is not an absolute URL", q.Get("redirect_uri"))
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = authorization{redirectURI: redirect.String(), challenge: q.Get("code_challenge")}
	p.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	if state := q.Get("state"); state != "" {
		back.Set("state", state)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// token exchanges a code once, for the client it was issued to and the
// verifier of its challenge. The page calls it from the console's origin,
// so it answers with CORS headers.
func (p *OIDCProvider) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := r.ParseForm(); err != nil {
		p.refuse(w, "token: %v", err)
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	auth, ok := p.codes[code]
	delete(p.codes, code)
	p.mu.Unlock()
	verifier := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code":
		p.refuse(w, "token: grant_type %q, want authorization_code", r.PostForm.Get("grant_type"))
	case !ok:
		p.refuse(w, "token: unknown or used code %q", code)
	case r.PostForm.Get("client_id") != p.clientID:
		p.refuse(w, "token: client_id %q, want %q", r.PostForm.Get("client_id"), p.clientID)
	case r.PostForm.Get("redirect_uri") != auth.redirectURI:
		p.refuse(w, "token: redirect_uri %q, want %q", r.PostForm.Get("redirect_uri"), auth.redirectURI)
	case base64.RawURLEncoding.EncodeToString(verifier[:]) != auth.challenge:
		p.refuse(w, "token: the code_verifier does not match the code_challenge")
	default:
		token, err := p.Issuer.Mint(p.user, oidcTokenTTL, nil)
		if err != nil {
			p.refuse(w, "token: %v", err)
			return
		}
		writeOIDCJSON(w, http.StatusOK, map[string]any{
			"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": int(oidcTokenTTL.Seconds()),
		})
	}
}

// refuse answers 400 in OAuth's shape and logs why, so a test whose
// sign-in never completes says what the client got wrong.
func (p *OIDCProvider) refuse(w http.ResponseWriter, format string, args ...any) {
	p.tb.Logf("oidc provider: "+format, args...)
	writeOIDCJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
}

func writeOIDCJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
