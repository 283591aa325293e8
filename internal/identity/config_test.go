package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestConfigValidate(t *testing.T) {
	base := func(change func(*Config)) Config {
		c := Config{JWKSURL: "https://issuer.example/.well-known/jwks.json", Issuer: testIssuer, Audience: testAudience}
		change(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // empty: valid
	}{
		{"minimal URL", base(func(*Config) {}), ""},
		{"file instead", base(func(c *Config) { c.JWKSURL, c.JWKSFile = "", "/etc/jwks.json" }), ""},
		{"everything set", base(func(c *Config) {
			c.SubjectClaim, c.Algorithms, c.Leeway = "username", []string{"ES256", "Ed25519"}, time.Minute
			c.RefreshInterval, c.CacheTTL, c.HTTPTimeout = time.Second, time.Hour, time.Second
			c.TokenCacheSize = 100
		}), ""},
		{"token cache off", base(func(c *Config) { c.TokenCacheSize = -1 }), ""},
		{"plain http URL", base(func(c *Config) { c.JWKSURL = "http://localhost:8081/jwks" }), ""},
		{"no key source", base(func(c *Config) { c.JWKSURL = "" }), "exactly one"},
		{"both key sources", base(func(c *Config) { c.JWKSFile = "/etc/jwks.json" }), "exactly one"},
		{"relative URL", base(func(c *Config) { c.JWKSURL = "/jwks.json" }), "not an absolute http(s) URL"},
		{"other scheme", base(func(c *Config) { c.JWKSURL = "file:///etc/jwks.json" }), "not an absolute http(s) URL"},
		{"no issuer", base(func(c *Config) { c.Issuer = "" }), "issuer is required"},
		{"no audience", base(func(c *Config) { c.Audience = "" }), "audience is required"},
		{"alg none", base(func(c *Config) { c.Algorithms = []string{"ES256", "none"} }), `algorithm "none" is not allowed`},
		{"HMAC", base(func(c *Config) { c.Algorithms = []string{"HS256"} }), `algorithm "HS256" is not allowed`},
		{"lower case", base(func(c *Config) { c.Algorithms = []string{"rs256"} }), `algorithm "rs256" is not allowed`},
		{"negative leeway", base(func(c *Config) { c.Leeway = -time.Second }), "leeway"},
		{"hour of leeway", base(func(c *Config) { c.Leeway = time.Hour }), "leeway"},
		{"negative timeout", base(func(c *Config) { c.HTTPTimeout = -time.Second }), "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}
