package identity

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestTokenUse(t *testing.T) {
	key := newECKey(t, "a")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, key))
	tokens := map[string]string{
		"id token":           key.sign(t, claimsAt(now, map[string]any{"token_use": "id"}), nil),
		"access token":       key.sign(t, claimsAt(now, map[string]any{"aud": nil, "token_use": "access", "client_id": testAudience}), nil),
		"access token, aud":  key.sign(t, claimsAt(now, map[string]any{"token_use": "access"}), nil),
		"no token_use":       key.sign(t, claimsAt(now, nil), nil),
		"token_use unknown":  key.sign(t, claimsAt(now, map[string]any{"token_use": "refresh"}), nil),
		"token_use a number": key.sign(t, claimsAt(now, map[string]any{"token_use": 1}), nil),
	}
	tests := []struct {
		tokenUse string
		accepted []string // every other token is refused
	}{
		{"", []string{"id token", "access token", "access token, aud", "no token_use", "token_use unknown", "token_use a number"}},
		{"id", []string{"id token"}},
		{"access", []string{"access token", "access token, aud"}},
	}
	for _, tt := range tests {
		cfg := urlConfig(srv.URL)
		cfg.TokenUse = tt.tokenUse
		v := newTestVerifier(t, cfg, clock)
		for name, token := range tokens {
			t.Run(cmp.Or(tt.tokenUse, "unset")+"/"+name, func(t *testing.T) {
				_, err := v.Verify(t.Context(), token)
				if !slices.Contains(tt.accepted, name) {
					wantReason(t, err, "wrong token use")
					return
				}
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			})
		}
	}
}

func TestTokenType(t *testing.T) {
	key := newECKey(t, "a")
	clock := newFakeClock()
	srv := newJWKSServer(t, publicJWKS(t, key))
	tests := []struct {
		tokenType string
		typ       any // nil: no typ header
		reason    string
	}{
		{"", nil, ""},
		{"", "JWT", ""},
		{"at+jwt", "at+jwt", ""},
		{"at+jwt", "AT+JWT", ""},
		{"at+jwt", "application/at+jwt", ""},
		{"at+jwt", "Application/At+Jwt", ""},
		{"application/at+jwt", "at+jwt", ""},
		{"AT+JWT", "at+jwt", ""},
		{"at+jwt", nil, "wrong token type"},
		{"at+jwt", "JWT", "wrong token type"},
		{"at+jwt", "", "wrong token type"},
		{"at+jwt", "text/at+jwt", "wrong token type"},
		{"at+jwt", "application/jwt", "wrong token type"},
		{"jwt", "at+jwt", "wrong token type"},
	}
	for _, tt := range tests {
		t.Run(cmp.Or(tt.tokenType, "unset")+"/"+typName(tt.typ), func(t *testing.T) {
			cfg := urlConfig(srv.URL)
			cfg.TokenType = tt.tokenType
			v := newTestVerifier(t, cfg, clock)
			var header map[string]any
			if tt.typ != nil {
				header = map[string]any{"typ": tt.typ}
			}
			_, err := v.Verify(t.Context(), key.sign(t, claimsAt(clock.Now(), nil), header))
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func typName(typ any) string {
	if typ == nil {
		return "no typ"
	}
	return "typ=" + typ.(string)
}

func TestTokenUseValidate(t *testing.T) {
	tests := []struct {
		tokenUse string
		valid    bool
	}{
		{"", true},
		{"id", true},
		{"access", true},
		{"ID", false},
		{"refresh", false},
		{"id,access", false},
	}
	for _, tt := range tests {
		t.Run(cmp.Or(tt.tokenUse, "unset"), func(t *testing.T) {
			cfg := urlConfig("https://issuer.example/jwks")
			cfg.TokenUse = tt.tokenUse
			err := cfg.Validate()
			if tt.valid {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), "token use") {
				t.Fatalf("Validate = %v, want ErrInvalid about the token use", err)
			}
		})
	}
}
