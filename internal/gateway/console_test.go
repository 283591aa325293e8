package gateway_test

import (
	"net/http"
	"testing"

	"github.com/tenantgate/tenantgate/internal/console"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

// TestConsoleRoutes: the console's pages need no token (its data comes
// from the API with the user's own), and without a console its paths are
// unknown routes like any other.
func TestConsoleRoutes(t *testing.T) {
	h, err := console.Handler(console.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	withConsole := func(e *env) { e.console = h }
	tests := []struct {
		name           string
		setup          func(*env)
		method, target string
		want           int
		wantType       string
	}{
		{"page", withConsole, "GET", "/console/", 200, "text/html; charset=utf-8"},
		{"script", withConsole, "GET", "/console/app.js", 200, "text/javascript; charset=utf-8"},
		{"config", withConsole, "GET", "/console/config.json", 200, "application/json"},
		{"redirect", withConsole, "GET", "/console", 301, ""},
		{"unknown console path", withConsole, "GET", "/console/admin", 404, "application/problem+json"},
		{"method the console refuses", withConsole, "PUT", "/console/", 405, "application/problem+json"},
		{"demo sign-in outside the demo", withConsole, "POST", "/console/demo/token", 404, "application/problem+json"},
		{"API still needs a token", withConsole, "GET", "/v1/companies", 401, "application/problem+json"},
		{"no console: page", nil, "GET", "/console/", 404, "application/problem+json"},
		{"no console: bare path", nil, "GET", "/console", 404, "application/problem+json"},
		{"no console: script", nil, "GET", "/console/app.js", 404, "application/problem+json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := buildEnv(t, gateway.Config{}, nil, tt.setup)
			rec := e.do(tt.method, tt.target, "", as(""))
			wantStatus(t, rec, tt.want)
			if got := rec.Header().Get("Content-Type"); tt.wantType != "" && got != tt.wantType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if tt.want == http.StatusMovedPermanently && rec.Header().Get("Location") != "/console/" {
				t.Errorf("Location %q, want /console/", rec.Header().Get("Location"))
			}
		})
	}
}
