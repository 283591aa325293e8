package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestVerifyAccepts(t *testing.T) {
	rsaKey, ecKey, edKey := newRSAKey(t, "rsa"), newECKey(t, "ec"), newEdKey(t, "ed")
	psKey := rsaKey
	psKey.alg = jwa.PS256()
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, rsaKey, ecKey, edKey))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)

	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"RS256", rsaKey.sign(t, claimsAt(now, nil), nil), "user-1"},
		{"PS256 with the same RSA key", psKey.sign(t, claimsAt(now, nil), nil), "user-1"},
		{"ES256", ecKey.sign(t, claimsAt(now, nil), nil), "user-1"},
		{"EdDSA", edKey.sign(t, claimsAt(now, nil), nil), "user-1"},
		{"audience among several", ecKey.sign(t, claimsAt(now, map[string]any{"aud": []string{"other", testAudience}}), nil), "user-1"},
		{"expired within leeway", ecKey.sign(t, claimsAt(now, map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), nil), "user-1"},
		{"not before within leeway", ecKey.sign(t, claimsAt(now, map[string]any{"nbf": now.Add(10 * time.Second).Unix()}), nil), "user-1"},
		{"issued just ahead of our clock", ecKey.sign(t, claimsAt(now, map[string]any{"iat": now.Add(10 * time.Second).Unix()}), nil), "user-1"},
		{"unusual but valid user id", ecKey.sign(t, claimsAt(now, map[string]any{"sub": "a.b@c d"}), nil), "a.b@c d"},
		{"cognito access token", ecKey.sign(t, claimsAt(now, map[string]any{"aud": nil, "token_use": "access", "client_id": testAudience}), nil), "user-1"},
		{"jku header is ignored", ecKey.sign(t, claimsAt(now, nil), map[string]any{"jku": "https://attacker.example/jwks"}), "user-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != tt.want {
				t.Fatalf("subject = %q, want %q", p.Subject, tt.want)
			}
		})
	}
	if got := srv.count(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (no refetch for known keys)", got)
	}
}

func TestVerifyRejects(t *testing.T) {
	// The hostile tokens of issue 15 are in TestHostileTokens; these are
	// the rest.
	rsaKey, ecKey := newRSAKey(t, "rsa"), newECKey(t, "ec")
	impostor := newECKey(t, "ec") // same kid as ecKey, different key
	esWithRSAKID := newECKey(t, "rsa")
	clock := newFakeClock()
	now := clock.Now()

	srv := newJWKSServer(t, publicJWKS(t, rsaKey, ecKey))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)

	unsigned := func([]byte) []byte { return nil }
	valid := ecKey.sign(t, claimsAt(now, nil), nil)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + strings.Split(ecKey.sign(t, claimsAt(now, map[string]any{"sub": "admin"}), nil), ".")[1] + "." + parts[2]

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"empty", "", "missing token"},
		{"garbage", "not a token", "malformed token"},
		{"three garbage parts", "a.b.c", "malformed token"},
		{"dots only", "..", "malformed token"},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "malformed token"},
		{"huge", strings.Repeat("a", maxTokenBytes+1), "token too large"},
		{"no alg", craft(t, map[string]any{"kid": "ec"}, claimsAt(now, nil), unsigned), "malformed token"},
		{"ES256 naming an RSA key", esWithRSAKID.sign(t, claimsAt(now, nil), nil), "algorithm does not fit the signing key"},
		{"signed by an impostor with a known kid", impostor.sign(t, claimsAt(now, nil), nil), "invalid signature"},
		{"tampered payload", tampered, "invalid signature"},
		{"claims not an object", ecKey.signPayload(t, []byte("[]"), nil), "malformed claims"},
		{"expired at the leeway edge", ecKey.sign(t, claimsAt(now, map[string]any{"exp": now.Add(-DefaultLeeway).Unix()}), nil), "token expired"},
		{"wrong issuer", ecKey.sign(t, claimsAt(now, map[string]any{"iss": "https://evil.example"}), nil), "wrong issuer"},
		{"missing issuer", ecKey.sign(t, claimsAt(now, map[string]any{"iss": nil}), nil), "wrong issuer"},
		{"empty audience list", ecKey.sign(t, claimsAt(now, map[string]any{"aud": []string{}}), nil), "wrong audience"},
		{"cognito id token without aud", ecKey.sign(t, claimsAt(now, map[string]any{"aud": nil, "token_use": "id", "client_id": testAudience}), nil), "token has no audience"},
		{"cognito access token for another client", ecKey.sign(t, claimsAt(now, map[string]any{"aud": nil, "token_use": "access", "client_id": "other"}), nil), "wrong audience"},
		{"client_id does not excuse a wrong aud", ecKey.sign(t, claimsAt(now, map[string]any{"aud": "other", "token_use": "access", "client_id": testAudience}), nil), "wrong audience"},
		{"control character in subject", ecKey.sign(t, claimsAt(now, map[string]any{"sub": "a\nb"}), nil), "subject is not a valid user id"},
		{"missing subject", ecKey.sign(t, claimsAt(now, map[string]any{"sub": nil}), nil), "token has no subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tt.token)
			if !errors.Is(err, authz.ErrUnauthenticated) {
				t.Fatalf("Verify = %+v, %v; want an ErrUnauthenticated", p, err)
			}
			if !strings.HasSuffix(err.Error(), ": "+tt.reason) {
				t.Fatalf("error %q, want reason %q", err, tt.reason)
			}
			if p.Subject != "" || p.Groups != nil {
				t.Fatalf("rejected token yielded principal %+v", p)
			}
		})
	}
}

func TestVerifyKeyAlgorithmPinned(t *testing.T) {
	// A JWK that names its algorithm accepts no other, even one its key
	// type could produce.
	rsaKey := newRSAKey(t, "rsa")
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksOf(t, rsaKey.publicJWK(t, map[string]any{"alg": "PS256"})))
	v := newTestVerifier(t, urlConfig(srv.URL), clock)

	_, err := v.Verify(t.Context(), rsaKey.sign(t, claimsAt(clock.Now(), nil), nil))
	if !errors.Is(err, authz.ErrUnauthenticated) || !strings.Contains(err.Error(), "algorithm does not fit the signing key") {
		t.Fatalf("RS256 with a PS256 key: %v", err)
	}
	psKey := rsaKey
	psKey.alg = jwa.PS256()
	if _, err := v.Verify(t.Context(), psKey.sign(t, claimsAt(clock.Now(), nil), nil)); err != nil {
		t.Fatalf("PS256: %v", err)
	}
}

func TestVerifySubjectClaim(t *testing.T) {
	ecKey := newECKey(t, "ec")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, ecKey))
	cfg := urlConfig(srv.URL)
	cfg.SubjectClaim = "username"
	v := newTestVerifier(t, cfg, clock)

	tests := []struct {
		name    string
		changes map[string]any
		want    string
		reason  string
	}{
		{"custom claim used", map[string]any{"username": "alice", "sub": "uuid-1"}, "alice", ""},
		{"sub alone is not enough", nil, "", "token has no subject"},
		{"not a string", map[string]any{"username": 42}, "", "subject is not a string"},
		{"wildcard", map[string]any{"username": "*"}, "", "subject is not a valid user id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), ecKey.sign(t, claimsAt(now, tt.changes), nil))
			if tt.reason != "" {
				if !errors.Is(err, authz.ErrUnauthenticated) || !strings.HasSuffix(err.Error(), ": "+tt.reason) {
					t.Fatalf("Verify = %+v, %v; want reason %q", p, err, tt.reason)
				}
				return
			}
			if err != nil || p.Subject != tt.want {
				t.Fatalf("Verify = %+v, %v; want subject %q", p, err, tt.want)
			}
		})
	}
}

// numberedGroups is n distinct group names.
func numberedGroups(n int) []string {
	groups := make([]string, n)
	for i := range groups {
		groups[i] = fmt.Sprintf("group-%d", i)
	}
	return groups
}

// warnings is the WARN lines of a text log.
func warnings(logs string) []string {
	var lines []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "level=WARN") {
			lines = append(lines, line)
		}
	}
	return lines
}

func TestVerifyGroups(t *testing.T) {
	ecKey := newECKey(t, "ec")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, ecKey))
	long := strings.Repeat("g", maxGroupBytes)

	tests := []struct {
		name    string
		claim   string
		changes map[string]any
		want    []string
		// warn is what the one WARN line must say; empty: no WARN line.
		warn string
	}{
		{"cognito array", "cognito:groups", map[string]any{"cognito:groups": []string{"Admin", "Ops"}}, []string{"Admin", "Ops"}, ""},
		{"okta or entra array", "groups", map[string]any{"groups": []string{"Everyone", "tenantgate-admins"}}, []string{"Everyone", "tenantgate-admins"}, ""},
		{"namespaced claim name with dots", "https://example.com/groups", map[string]any{"https://example.com/groups": []string{"admins"}}, []string{"admins"}, ""},
		{"dots are not a path", "app.groups", map[string]any{"app": map[string]any{"groups": []string{"admins"}}}, nil, ""},
		{"space-separated string", "roles", map[string]any{"roles": " admin  ops\tdev\n"}, []string{"admin", "ops", "dev"}, ""},
		{"single group as a string", "roles", map[string]any{"roles": "admin"}, []string{"admin"}, ""},
		{"blank string", "roles", map[string]any{"roles": " \t "}, nil, ""},
		{"empty array", "groups", map[string]any{"groups": []string{}}, nil, ""},
		{"claim absent", "groups", nil, nil, ""},
		{"no claim configured", "", map[string]any{"groups": []string{"admins"}}, nil, ""},
		{"registered claim", "aud", map[string]any{"aud": []string{testAudience, "other"}}, []string{testAudience, "other"}, ""},
		{"empty names dropped", "groups", map[string]any{"groups": []string{"", "admins", ""}}, []string{"admins"}, ""},
		{"duplicates removed", "groups", map[string]any{"groups": []string{"b", "a", "b", "a"}}, []string{"b", "a"}, ""},
		{"duplicates removed from a string", "roles", map[string]any{"roles": "a b a"}, []string{"a", "b"}, ""},
		{"case-sensitive", "groups", map[string]any{"groups": []string{"Admin", "admin", "ADMIN"}}, []string{"Admin", "admin", "ADMIN"}, ""},
		{"names kept as sent", "groups", map[string]any{"groups": []string{" admin", "a b"}}, []string{" admin", "a b"}, ""},
		{"number", "groups", map[string]any{"groups": 42}, nil, "type=number"},
		{"boolean", "groups", map[string]any{"groups": true}, nil, "type=boolean"},
		{"object", "groups", map[string]any{"groups": map[string]any{"admins": true}}, nil, "type=object"},
		{"null", "groups", map[string]any{"groups": json.RawMessage("null")}, nil, "type=null"},
		{"array holding a number", "groups", map[string]any{"groups": []any{"admins", 7}}, nil, `type="array holding number"`},
		{"array holding null", "groups", map[string]any{"groups": []any{"admins", nil}}, nil, `type="array holding null"`},
		{"array holding an array", "groups", map[string]any{"groups": []any{[]string{"admins"}}}, nil, `type="array holding array"`},
		{"array holding an object", "groups", map[string]any{"groups": []any{map[string]any{"name": "admins"}}}, nil, `type="array holding object"`},
		{"as many groups as allowed", "groups", map[string]any{"groups": numberedGroups(maxGroups)}, numberedGroups(maxGroups), ""},
		{"one group too many", "groups", map[string]any{"groups": numberedGroups(maxGroups + 1)}, nil, "too many groups"},
		{"one group too many in a string", "roles", map[string]any{"roles": strings.Join(numberedGroups(maxGroups+1), " ")}, nil, "too many groups"},
		{"too many entries, though duplicates", "groups", map[string]any{"groups": slices.Repeat([]string{"admins"}, maxGroups+1)}, nil, "too many groups"},
		{"group as long as allowed", "groups", map[string]any{"groups": []string{long}}, []string{long}, ""},
		{"group too long", "groups", map[string]any{"groups": []string{"admins", long + "g"}}, nil, "too long"},
		{"group too long in a string", "roles", map[string]any{"roles": "admins " + long + "g"}, nil, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := urlConfig(srv.URL)
			cfg.GroupsClaim = tt.claim
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			v := newTestVerifier(t, cfg, clock)
			token := ecKey.sign(t, claimsAt(now, tt.changes), nil)

			p, err := v.Verify(t.Context(), token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "user-1" || !slices.Equal(p.Groups, tt.want) {
				t.Fatalf("Verify = %+v, want subject %q and groups %q", p, "user-1", tt.want)
			}
			if len(tt.want) == 0 && p.Groups != nil {
				t.Fatalf("groups = %#v, want nil", p.Groups)
			}
			warns := warnings(logs.String())
			if tt.warn == "" {
				if len(warns) != 0 {
					t.Fatalf("unexpected warnings:\n%s", strings.Join(warns, ""))
				}
				return
			}
			if len(warns) != 1 || !strings.Contains(warns[0], tt.warn) || !strings.Contains(warns[0], "claim="+tt.claim) {
				t.Fatalf("want one warning naming claim %q and saying %q, got:\n%s", tt.claim, tt.warn, logs.String())
			}
			payload := strings.Split(token, ".")[1]
			if strings.Contains(logs.String(), payload) {
				t.Fatalf("the log holds the token:\n%s", logs.String())
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	ecKey := newECKey(t, "ec")
	clock := newFakeClock()
	now := clock.Now()
	srv := newJWKSServer(t, publicJWKS(t, ecKey))
	cfg := urlConfig(srv.URL)
	cfg.GroupsClaim = "cognito:groups"
	v := newTestVerifier(t, cfg, clock)

	tests := []struct {
		name   string
		token  string
		want   authz.Principal
		reason string
	}{
		{"with groups", ecKey.sign(t, claimsAt(now, map[string]any{"cognito:groups": []string{"Admin"}}), nil), authz.Principal{Subject: "user-1", Groups: []string{"Admin"}}, ""},
		{"without groups", ecKey.sign(t, claimsAt(now, nil), nil), authz.Principal{Subject: "user-1"}, ""},
		{"rejected", ecKey.sign(t, claimsAt(now, map[string]any{"aud": "other", "cognito:groups": []string{"Admin"}}), nil), authz.Principal{}, "wrong audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Authenticate(t.Context(), tt.token)
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
			} else if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.Subject != tt.want.Subject || !slices.Equal(p.Groups, tt.want.Groups) {
				t.Fatalf("Authenticate = %+v, want %+v", p, tt.want)
			}
		})
	}
}
