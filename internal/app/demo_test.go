package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

var (
	curlURL    = regexp.MustCompile(`curl -s(?: -X (\w+))? '([^']+)'`)
	curlBearer = regexp.MustCompile(`Authorization: Bearer ([\w.-]+)`)
	curlBody   = regexp.MustCompile(` -d '([^']*)'`)
)

// TestDemoPrintsCommandsThatAnswerAsPrinted runs the demo as a user would
// and replays every printed curl command, comparing the answer with the one
// printed under it.
func TestDemoPrintsCommandsThatAnswerAsPrinted(t *testing.T) {
	_, out := servetest.Demo(t, func(*app.Config) {})
	var err error
	blocks := strings.Split(out, "\n\n# ")[1:]
	if len(blocks) < 8 {
		t.Fatalf("demo printed %d examples, want at least 8:\n%s", len(blocks), out)
	}
	users := map[string]bool{}
	for _, block := range blocks {
		if !strings.Contains(block, "curl") {
			continue
		}
		users[strings.Fields(block)[2]] = true
		m := curlURL.FindStringSubmatch(block)
		bearer := curlBearer.FindStringSubmatch(block)
		if m == nil || bearer == nil {
			t.Fatalf("cannot parse printed command:\n%s", block)
		}
		printed := block[strings.Index(block, "# => ")+len("# => "):]
		printed = strings.TrimSpace(strings.SplitN(printed, "\n", 2)[0])
		// "HTTP 403 {...}" for an answer that is not a 200.
		wantStatus := http.StatusOK
		if rest, ok := strings.CutPrefix(printed, "HTTP "); ok {
			code, doc, _ := strings.Cut(rest, " ")
			if wantStatus, err = strconv.Atoi(code); err != nil {
				t.Fatalf("printed status in %q: %v", printed, err)
			}
			printed = doc
		}
		method := m[1]
		if method == "" {
			method = http.MethodGet
		}
		var body io.Reader
		if b := curlBody.FindStringSubmatch(block); b != nil {
			body = strings.NewReader(b[1])
		}
		req, err := http.NewRequest(method, m[2], body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bearer[1])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Errorf("%s %s: status %d %s, printed %d", method, m[2], resp.StatusCode, raw, wantStatus)
			continue
		}
		if !sameJSONIgnoringToken(t, raw, []byte(printed)) {
			t.Errorf("%s %s answered %s, printed %s", method, m[2], raw, printed)
		}
	}
	if len(users) < 6 {
		t.Errorf("demo shows %d users, want at least 6", len(users))
	}
}

// TestDemoWithConsentRequired: in the other consent mode the demo's grant
// is an invitation, and the invitee's accept makes it a membership.
func TestDemoWithConsentRequired(t *testing.T) {
	_, out := servetest.Demo(t, func(c *app.Config) { c.MembershipConsent = "required" })
	for _, want := range []string{
		`# => {"company_id":"acme-paris","role":"editor","status":"pending","user_id":"henry@acme.example"}`,
		"# henry@acme.example accepts the invitation to acme-paris",
		`# => {"company_id":"acme-paris","role":"editor","status":"active","user_id":"henry@acme.example"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func sameJSONIgnoringToken(t *testing.T, got, printed []byte) bool {
	t.Helper()
	var a, b map[string]any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("answer %s: %v", got, err)
	}
	if err := json.Unmarshal(printed, &b); err != nil {
		t.Fatalf("printed answer %s: %v", printed, err)
	}
	delete(a, "consistency_token")
	delete(a, "request_id")
	// An AuthZEN decision carries its token in its context.
	if c, ok := a["context"].(map[string]any); ok {
		delete(c, "consistency_token")
		if len(c) == 0 {
			delete(a, "context")
		}
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
