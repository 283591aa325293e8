package identity

import (
	"testing"
	"time"
)

func TestClaimReasonOrder(t *testing.T) {
	// With several faults, the first check in order gives the reason: iss,
	// exp, nbf, iat, token_use, audience, subject.
	key := newECKey(t, "a")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, key))
	cfg := urlConfig(srv.URL)
	cfg.TokenUse = "access"
	v := newTestVerifier(t, cfg, clock)

	faults := []struct {
		claims map[string]any
		reason string
	}{
		{map[string]any{"iss": "https://evil.example"}, "wrong issuer"},
		{map[string]any{"exp": nil}, "token has no expiry"},
		{map[string]any{"exp": now.Add(-time.Hour).Unix()}, "token expired"},
		{map[string]any{"nbf": now.Add(time.Hour).Unix()}, "token not yet valid"},
		{map[string]any{"iat": now.Add(time.Hour).Unix()}, "token issued in the future"},
		{map[string]any{"token_use": "id"}, "wrong token use"},
		{map[string]any{"aud": "other"}, "wrong audience"},
		{map[string]any{"sub": nil}, "token has no subject"},
	}
	for i, fault := range faults {
		t.Run(fault.reason, func(t *testing.T) {
			// This fault and every later one, applied from the last, so
			// that a missing "exp" overrides one in the past.
			changes := map[string]any{"token_use": "access"}
			for j := len(faults) - 1; j >= i; j-- {
				for name, value := range faults[j].claims {
					changes[name] = value
				}
			}
			_, err := v.Verify(t.Context(), key.sign(t, claimsAt(now, changes), nil))
			wantReason(t, err, fault.reason)
		})
	}
}

func TestConfiguredLeeway(t *testing.T) {
	key := newECKey(t, "a")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, key))
	cfg := urlConfig(srv.URL)
	cfg.Leeway = 2 * time.Minute
	v := newTestVerifier(t, cfg, clock)

	tests := []struct {
		name    string
		changes map[string]any
		reason  string
	}{
		{"expired within leeway", map[string]any{"exp": now.Add(-time.Minute).Unix()}, ""},
		{"expired at the leeway edge", map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}, "token expired"},
		{"not before within leeway", map[string]any{"nbf": now.Add(time.Minute).Unix()}, ""},
		{"not before past the leeway", map[string]any{"nbf": now.Add(2*time.Minute + time.Second).Unix()}, "token not yet valid"},
		{"issued ahead within leeway", map[string]any{"iat": now.Add(2 * time.Minute).Unix()}, ""},
		{"issued ahead past the leeway", map[string]any{"iat": now.Add(2*time.Minute + time.Second).Unix()}, "token issued in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), key.sign(t, claimsAt(now, tt.changes), nil))
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
