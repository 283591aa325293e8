package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

// TestDemoConsoleSignIn: the demo prints the console's URL, and its
// one-click sign-in gives a sample user a token the gateway accepts, and
// nobody else one.
func TestDemoConsoleSignIn(t *testing.T) {
	_, out := servetest.Demo(t, func(*app.Config) {})
	m := regexp.MustCompile(`(?m)^Console: (http://\S+/console/) \(sign in as a sample user with one click\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo output lacks the console line:\n%s", out)
	}
	console := m[1]
	signIn := func(t *testing.T, user string) (int, string) {
		t.Helper()
		resp, err := http.Post(console+"demo/token", "application/json", strings.NewReader(`{"user":"`+user+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body.Token
	}
	tests := []struct {
		user       string
		wantStatus int
	}{
		{"alice@acme.example", http.StatusOK},
		{"erin@globex.example", http.StatusOK},
		{"dave@acme.example", http.StatusForbidden},
		{"sam@support.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			status, token := signIn(t, tt.user)
			if status != tt.wantStatus {
				t.Fatalf("sign-in status %d, want %d", status, tt.wantStatus)
			}
			if status != http.StatusOK {
				return
			}
			req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(console, "/console/")+"/v1/companies", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
				t.Errorf("the token's list: status %d: %s", resp.StatusCode, body)
			}
		})
	}
}
