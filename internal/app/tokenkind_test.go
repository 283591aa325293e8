package app_test

import (
	"encoding/json"
	"mime"
	"net/http"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/tenantgate/tenantgate/internal/app"
)

// startStackWithFlags is startEmbeddedStack with extra command-line flags,
// parsed the way the tenantgate command parses them, so the test covers the
// flag as well as what it does.
func startStackWithFlags(t *testing.T, args []string, seed ...string) *stack {
	t.Helper()
	return startEmbeddedStackWith(t, func(cfg *app.Config) {
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		app.BindFlags(fs, cfg)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("flags %q: %v", args, err)
		}
	}, seed...)
}

func TestTokenUseAccessRefusesIDTokens(t *testing.T) {
	s := startStackWithFlags(t, []string{"--token-use", "access"}, treeSeed)
	aud := s.issuer.Audience()
	tests := []struct {
		name  string
		extra map[string]any
		want  int
	}{
		{"ID token", map[string]any{"token_use": "id"}, http.StatusUnauthorized},
		{"token without token_use", nil, http.StatusUnauthorized},
		{"access token", map[string]any{"aud": nil, "token_use": "access", "client_id": aud}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := s.issuer.Mint("alice", time.Hour, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			a, err := s.send("POST", "/v1/check", tok, []byte(`{"permission":"read","company":"holding"}`), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != tt.want {
				t.Fatalf("status %d, want %d: %s", a.status, tt.want, a.body)
			}
			if tt.want == http.StatusOK {
				requireAllowedAnswer(t, a.body)
				return
			}
			requireProblemAnswer(t, a, tt.want)
		})
	}
}

func requireAllowedAnswer(t *testing.T, body []byte) {
	t.Helper()
	var ans checkAnswer
	if err := json.Unmarshal(body, &ans); err != nil || !ans.Allowed {
		t.Fatalf("answer %s (%v), want allowed: alice owns holding", body, err)
	}
}

func requireProblemAnswer(t *testing.T, a answer, status int) {
	t.Helper()
	if ct, _, _ := mime.ParseMediaType(a.header.Get("Content-Type")); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", a.header.Get("Content-Type"))
	}
	var problem struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(a.body, &problem); err != nil || problem.Status != status {
		t.Errorf("problem %s (%v), want status %d", a.body, err, status)
	}
}
