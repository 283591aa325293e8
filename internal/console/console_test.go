package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/console"
)

var demoUsers = []console.DemoUser{{ID: "alice@acme.example", Label: "Alice, owner of ACME Holding"}}

func mintFor(_ context.Context, user string) (string, error) { return "token-of-" + user, nil }

var oidc = &console.OIDC{ClientID: "console", AuthorizationEndpoint: "https://idp.example/authorize",
	TokenEndpoint: "https://login.idp.example:8443/oauth/token"}

func newHandler(t *testing.T, cfg console.Config) http.Handler {
	t.Helper()
	h, err := console.Handler(cfg, nil)
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	return h
}

func serve(t *testing.T, h http.Handler, method, path, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestResponses(t *testing.T) {
	h := newHandler(t, console.Config{DemoUsers: demoUsers, DemoSignIn: mintFor})
	tests := []struct {
		method, path string
		status       int
		contentType  string
	}{
		{"GET", "/console/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/console/", 200, "text/html; charset=utf-8"},
		{"GET", "/console/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/console/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/console/config.json", 200, "application/json"},
		{"GET", "/console", 301, ""},
		{"GET", "/console/index.html", 404, "application/problem+json"},
		{"GET", "/console/static/app.js", 404, "application/problem+json"},
		{"GET", "/console/nothing", 404, "application/problem+json"},
		{"POST", "/console/", 405, "application/problem+json"},
		{"DELETE", "/console/app.js", 405, "application/problem+json"},
		{"GET", "/console/demo/token", 405, "application/problem+json"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := serve(t, h, tt.method, tt.path, "", "")
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.contentType != "" && rec.Header().Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tt.contentType)
			}
			for header, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := rec.Header().Get(header); got != want {
					t.Errorf("%s %q, want %q", header, got, want)
				}
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if tt.status == 301 && rec.Header().Get("Location") != "/console/" {
				t.Errorf("Location %q, want /console/", rec.Header().Get("Location"))
			}
		})
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	const base = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'%s; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	tests := []struct {
		name string
		cfg  console.Config
		want string
	}{
		{"without OIDC", console.Config{}, strings.Replace(base, "%s", "", 1)},
		{"with OIDC, the token endpoint's origin", console.Config{OIDC: oidc}, strings.Replace(base, "%s", " https://login.idp.example:8443", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csp := serve(t, newHandler(t, tt.cfg), "GET", "/console/", "", "").Header().Get("Content-Security-Policy")
			if csp != tt.want {
				t.Errorf("Content-Security-Policy\n got %q\nwant %q", csp, tt.want)
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy allows inline code: %q", csp)
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	tests := []struct {
		name string
		cfg  console.Config
		want string
	}{
		{"no demo, no OIDC", console.Config{}, `{"oidc":null}`},
		{"demo", console.Config{DemoUsers: demoUsers, DemoSignIn: mintFor},
			`{"demo_users":[{"id":"alice@acme.example","label":"Alice, owner of ACME Holding"}],"oidc":null}`},
		{"OIDC with the default scope", console.Config{OIDC: oidc},
			`{"oidc":{"client_id":"console","authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://login.idp.example:8443/oauth/token","scope":"openid"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, newHandler(t, tt.cfg), "GET", "/console/config.json", "", "")
			if got := strings.TrimSpace(rec.Body.String()); got != tt.want {
				t.Errorf("config.json\n got %s\nwant %s", got, tt.want)
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
			}
		})
	}
}

func TestDemoToken(t *testing.T) {
	demo := newHandler(t, console.Config{DemoUsers: demoUsers, DemoSignIn: mintFor})
	failing := newHandler(t, console.Config{DemoUsers: demoUsers, DemoSignIn: func(context.Context, string) (string, error) {
		return "", errors.New("signing key gone")
	}})
	noDemo := newHandler(t, console.Config{})
	tests := []struct {
		name        string
		h           http.Handler
		contentType string
		body        string
		status      int
		token       string
	}{
		{"a sample user", demo, "application/json", `{"user":"alice@acme.example"}`, 200, "token-of-alice@acme.example"},
		{"media type parameters", demo, "application/json; charset=utf-8", `{"user":"alice@acme.example"}`, 200, "token-of-alice@acme.example"},
		{"another user", demo, "application/json", `{"user":"mallory@evil.example"}`, 403, ""},
		{"no user", demo, "application/json", `{}`, 400, ""},
		{"empty user", demo, "application/json", `{"user":""}`, 400, ""},
		{"unknown field", demo, "application/json", `{"user":"alice@acme.example","admin":true}`, 400, ""},
		{"two documents", demo, "application/json", `{"user":"alice@acme.example"}{}`, 400, ""},
		{"not JSON", demo, "application/json", `user=alice`, 400, ""},
		{"not a string", demo, "application/json", `{"user":1}`, 400, ""},
		{"form body", demo, "application/x-www-form-urlencoded", `user=alice@acme.example`, 415, ""},
		{"too large", demo, "application/json", `{"user":"` + strings.Repeat("a", 5000) + `"}`, 413, ""},
		{"minting fails", failing, "application/json", `{"user":"alice@acme.example"}`, 500, ""},
		{"not a demo", noDemo, "application/json", `{"user":"alice@acme.example"}`, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, tt.h, "POST", "/console/demo/token", tt.contentType, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status != 200 {
				var p struct {
					Type   string `json:"type"`
					Status int    `json:"status"`
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type %q, want application/problem+json", ct)
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tt.status || p.Type != "about:blank" {
					t.Errorf("problem document %s (%v)", rec.Body, err)
				}
				return
			}
			var got struct{ Token string }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Token != tt.token {
				t.Errorf("body %s, want the token %q (%v)", rec.Body, tt.token, err)
			}
		})
	}
}

func TestHandlerRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  console.Config
	}{
		{"demo users without a sign-in", console.Config{DemoUsers: demoUsers}},
		{"demo user without a label", console.Config{DemoUsers: []console.DemoUser{{ID: "a"}}, DemoSignIn: mintFor}},
		{"OIDC without a client", console.Config{OIDC: &console.OIDC{AuthorizationEndpoint: oidc.AuthorizationEndpoint, TokenEndpoint: oidc.TokenEndpoint}}},
		{"OIDC with a relative endpoint", console.Config{OIDC: &console.OIDC{ClientID: "c", AuthorizationEndpoint: "/authorize", TokenEndpoint: oidc.TokenEndpoint}}},
		{"OIDC with a javascript endpoint", console.Config{OIDC: &console.OIDC{ClientID: "c", AuthorizationEndpoint: oidc.AuthorizationEndpoint, TokenEndpoint: "javascript:alert(1)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := console.Handler(tt.cfg, nil); err == nil {
				t.Error("Handler accepted the config")
			}
		})
	}
}

// TestStaticFilesHoldNoInlineCode keeps the files within what the CSP
// allows and the script away from the APIs that turn text into markup or
// code, through which an attacker-chosen name could run.
func TestStaticFilesHoldNoInlineCode(t *testing.T) {
	files := console.StaticFiles()
	read := func(t *testing.T, name string) string {
		t.Helper()
		b, err := fs.ReadFile(files, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		file      string
		forbidden *regexp.Regexp
	}{
		{"index.html", regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`)},
		{"index.html", regexp.MustCompile(`(?i)\sstyle\s*=`)},
		{"index.html", regexp.MustCompile(`(?i)\son\w+\s*=`)},
		{"index.html", regexp.MustCompile(`(?i)<style`)},
		{"app.js", regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*['"]`)},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.forbidden.String(), func(t *testing.T) {
			if m := tt.forbidden.FindString(read(t, tt.file)); m != "" {
				t.Errorf("%s holds %q", tt.file, m)
			}
		})
	}
}
