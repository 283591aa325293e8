package testutil

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func TestTokenIssuer(t *testing.T) {
	ti, err := NewTokenIssuer("https://issuer.test", "app")
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
	if kid, _ := raw["keys"][0]["kid"].(string); kid == "" {
		t.Fatal("JWKS key has no kid")
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

	other, err := NewTokenIssuer("https://issuer.test", "app")
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
