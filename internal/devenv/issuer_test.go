package devenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func TestIssuer(t *testing.T) {
	ti, err := GenerateIssuer("https://issuer.test", "app")
	if err != nil {
		t.Fatal(err)
	}
	if ti.Issuer() != "https://issuer.test" || ti.Audience() != "app" {
		t.Fatalf("accessors = %q, %q", ti.Issuer(), ti.Audience())
	}
	data, err := ti.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	if set.Len() != 1 {
		t.Fatalf("JWKS has %d keys, want 1", set.Len())
	}
	var raw map[string][]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if _, leaked := raw["keys"][0]["d"]; leaked {
		t.Fatal("JWKS contains the private key")
	}
	if kid, _ := raw["keys"][0]["kid"].(string); kid == "" || kid != ti.KeyID() {
		t.Fatalf("JWKS key has kid %q, want %q", kid, ti.KeyID())
	}

	tests := []struct {
		name    string
		subject string
		ttl     time.Duration
		extra   map[string]any
		check   func(t *testing.T, tok jwt.Token)
	}{
		{"standard claims", "user-1", time.Hour, nil, func(t *testing.T, tok jwt.Token) {
			iss, _ := tok.Issuer()
			aud, _ := tok.Audience()
			sub, _ := tok.Subject()
			exp, _ := tok.Expiration()
			if iss != "https://issuer.test" || len(aud) != 1 || aud[0] != "app" || sub != "user-1" {
				t.Fatalf("iss %q aud %q sub %q", iss, aud, sub)
			}
			if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
				t.Fatalf("exp in %s, want about an hour", d)
			}
		}},
		{"negative ttl expires", "user-1", -time.Minute, nil, func(t *testing.T, tok jwt.Token) {
			if exp, _ := tok.Expiration(); !exp.Before(time.Now()) {
				t.Fatalf("exp %s is not in the past", exp)
			}
		}},
		{"empty subject left out", "", time.Hour, nil, func(t *testing.T, tok jwt.Token) {
			if tok.Has(jwt.SubjectKey) {
				t.Fatal("token has a sub")
			}
		}},
		{"extra overrides and removes", "user-1", time.Hour, map[string]any{"aud": nil, "iss": "other", "client_id": "app"}, func(t *testing.T, tok jwt.Token) {
			var client string
			if err := tok.Get("client_id", &client); err != nil || client != "app" {
				t.Fatalf("client_id = %q, %v", client, err)
			}
			if iss, _ := tok.Issuer(); iss != "other" {
				t.Fatalf("iss = %q", iss)
			}
			if tok.Has(jwt.AudienceKey) {
				t.Fatal("aud not removed")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed, err := ti.Mint(tt.subject, tt.ttl, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.ParseString(signed, jwt.WithKeySet(set), jwt.WithValidate(false))
			if err != nil {
				t.Fatalf("verify with the published JWKS: %v", err)
			}
			tt.check(t, tok)
		})
	}

	other, err := GenerateIssuer("https://issuer.test", "app")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Mint("user-1", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.ParseString(foreign, jwt.WithKeySet(set), jwt.WithValidate(false)); err == nil {
		t.Fatal("a second issuer's token verified with the first issuer's JWKS")
	}
}

// TestSameKeySameKeySet: the kid and the key set follow from the key alone,
// so an issuer restarted on its key file publishes what it published before.
func TestSameKeySameKeySet(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var kids, sets []string
	for range 2 {
		iss, err := NewIssuer("i", "a", priv)
		if err != nil {
			t.Fatal(err)
		}
		jwks, err := iss.JWKS()
		if err != nil {
			t.Fatal(err)
		}
		kids, sets = append(kids, iss.KeyID()), append(sets, string(jwks))
	}
	if kids[0] != kids[1] || sets[0] != sets[1] {
		t.Fatalf("the same key gave kids %q and key sets\n%s\n%s", kids, sets[0], sets[1])
	}
}

func TestNewIssuerRefusesOtherCurves(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewIssuer("i", "a", p384); err == nil {
		t.Fatal("NewIssuer accepted a P-384 key for ES256")
	}
}

// TestServeJWKS: the demo's key set URL serves the key set and nothing else.
func TestServeJWKS(t *testing.T) {
	ti, err := GenerateIssuer("i", "a")
	if err != nil {
		t.Fatal(err)
	}
	jwksURL, stop, err := ti.ServeJWKS()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	u, err := url.Parse(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Path != JWKSPath {
		t.Fatalf("key set URL %s, want http://127.0.0.1:<port>%s", jwksURL, JWKSPath)
	}
	want, err := ti.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Fatalf("GET %s: status %d, body %s, err %v; want the key set %s", jwksURL, resp.StatusCode, body, err, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	for _, path := range []string{"/token?sub=alice", "/healthz"} {
		resp, err := http.Get("http://" + u.Host + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404: ServeJWKS serves the key set only", path, resp.StatusCode)
		}
	}
	stop()
	if resp, err := http.Get(jwksURL); err == nil {
		resp.Body.Close()
		t.Fatal("the key set is still served after stop")
	}
}

func TestWriteJWKSFile(t *testing.T) {
	ti, err := GenerateIssuer("i", "a")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ti.WriteJWKSFile(path); err != nil {
		t.Fatal(err)
	}
	want, err := ti.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != string(want) {
		t.Fatalf("file holds %s (%v), want %s", got, err, want)
	}
	if info, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if perm := info.Mode().Perm(); perm != jwksFileMode {
		t.Fatalf("mode %o, want %o", perm, jwksFileMode)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
	if err := ti.WriteJWKSFile(filepath.Join(dir, "missing", "jwks.json")); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}
