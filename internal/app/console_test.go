package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestConsoleConfigDiscovery(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		document    string // %s is the issuer
		wantInvalid bool   // a configuration error, not retried
		wantErr     bool
	}{
		{"both endpoints", 200, `{"issuer":"%s","authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://idp.example/token"}`, false, false},
		{"no token endpoint", 200, `{"issuer":"%s","authorization_endpoint":"https://idp.example/authorize"}`, true, true},
		{"no authorization endpoint", 200, `{"issuer":"%s","token_endpoint":"https://idp.example/token"}`, true, true},
		{"another issuer", 200, `{"issuer":"https://other.example","authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://idp.example/token"}`, true, true},
		{"not JSON", 200, `<html>`, true, true},
		{"no discovery", 404, `{}`, true, true},
		{"issuer failing", 503, `{}`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var issuer string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/.well-known/openid-configuration" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, strings.ReplaceAll(tt.document, "%s", issuer)) //nolint:errcheck // the test fails on what the client reads
			}))
			defer srv.Close()
			issuer = srv.URL
			got, err := discoverOIDC(context.Background(), srv.Client(), issuer)
			if (err != nil) != tt.wantErr || errors.Is(err, authz.ErrInvalid) != tt.wantInvalid {
				t.Fatalf("error %v, want error %v, configuration error %v", err, tt.wantErr, tt.wantInvalid)
			}
			if err == nil && (got.AuthorizationEndpoint != "https://idp.example/authorize" || got.TokenEndpoint != "https://idp.example/token" || got.Scope != "openid") {
				t.Errorf("endpoints %+v", got)
			}
		})
	}
	t.Run("issuer that is no URL", func(t *testing.T) {
		if _, err := discoverOIDC(context.Background(), http.DefaultClient, "tenantgate-demo"); !errors.Is(err, authz.ErrInvalid) {
			t.Errorf("error %v, want a configuration error", err)
		}
	})
}

func TestConsoleConfigHandler(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	tests := []struct {
		name        string
		console     bool
		wantHandler bool
	}{
		{"on", true, true},
		{"off", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.Console = tt.console
			h, err := consoleHandler(context.Background(), newStartup(0, logger), cfg, logger)
			if err != nil || (h != nil) != tt.wantHandler {
				t.Errorf("handler %v, error %v; want a handler: %v", h, err, tt.wantHandler)
			}
		})
	}
	t.Run("client ID without the console", func(t *testing.T) {
		cfg := Default()
		cfg.Console, cfg.ConsoleOIDCClientID = false, "console"
		if err := cfg.Validate(); !errors.Is(err, authz.ErrInvalid) {
			t.Errorf("Validate: %v, want a configuration error", err)
		}
	})
}

func TestDemoConsoleUsers(t *testing.T) {
	want := map[string]string{
		"alice@acme.example":  "Alice, owner of ACME Holding",
		"bob@acme.example":    "Bob, viewer of ACME Holding and admin of ACME France",
		"carol@acme.example":  "Carol, editor of ACME Europe",
		"erin@globex.example": "Erin, owner of Globex Corp and viewer of ACME Germany",
		"grace@acme.example":  "Grace, admin of ACME Americas",
	}
	users := demoConsoleUsers()
	if len(users) != len(want) {
		t.Fatalf("%d users, want %d: %v", len(users), len(want), users)
	}
	for _, u := range users {
		if want[u.ID] != u.Label {
			t.Errorf("%s: label %q, want %q", u.ID, u.Label, want[u.ID])
		}
	}
}
