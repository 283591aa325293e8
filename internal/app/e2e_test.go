package app_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// syncBound is how long a committed change may take to reach a check.
const syncBound = 15 * time.Second

const treeSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('holding', 'Holding', NULL),
  ('europe', 'Europe', 'holding'),
  ('france', 'France', 'europe'),
  ('paris', 'Paris', 'france'),
  ('globex', 'Globex', NULL);
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('alice', 'holding', 'owner', 'active'),
  ('bob', 'holding', 'viewer', 'active'),
  ('bob', 'france', 'admin', 'active'),
  ('carol', 'europe', 'editor', 'active'),
  ('erin', 'paris', 'viewer', 'inactive'),
  ('frank', 'globex', 'owner', 'pending');`

type expectation struct {
	user, perm, company string
	want                bool
}

func (s *stack) expect(t *testing.T, exps ...expectation) {
	t.Helper()
	for _, e := range exps {
		testutil.Eventually(t, syncBound, func() error {
			var ans checkAnswer
			code, err := s.call("POST", "/v1/check", s.token(e.user), map[string]string{"permission": e.perm, "company": e.company}, &ans)
			switch {
			case err != nil:
				t.Fatal(err)
			// A gateway that cannot vouch for its answer yet (a stale
			// mirror after an outage on a loaded machine) says so with
			// 503 and Retry-After; a client retries, and so does this.
			case code == http.StatusServiceUnavailable:
				return fmt.Errorf("%s %s on %s: 503", e.user, e.perm, e.company)
			case code != http.StatusOK:
				t.Fatalf("check %s %s %s: status %d", e.user, e.perm, e.company, code)
			case ans.Allowed != e.want:
				return fmt.Errorf("%s %s on %s = %v, want %v", e.user, e.perm, e.company, ans.Allowed, e.want)
			}
			return nil
		})
	}
}

func TestEndToEndSnapshotThenEveryChangeKind(t *testing.T) {
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := startStack(t, treeSeed)

		t.Run("snapshot", func(t *testing.T) {
			// Rows written before start are visible as soon as the gateway is
			// ready: no polling.
			for _, e := range []expectation{
				{"alice", "manage_owners", "paris", true},
				{"bob", "read", "holding", true},
				{"bob", "update", "europe", false},
				{"bob", "manage_members", "paris", true},
				{"bob", "manage_owners", "france", false},
				{"carol", "update", "paris", true},
				{"carol", "create", "europe", false},
				{"carol", "read", "holding", false},
				{"erin", "read", "paris", false},
				{"frank", "read", "globex", false},
				{"alice", "read", "globex", false},
				{"alice", "read", "no-such-company", false},
			} {
				if got := s.check(e.user, e.perm, e.company); got != e.want {
					t.Errorf("%s %s on %s = %v, want %v", e.user, e.perm, e.company, got, e.want)
				}
			}
			got := s.companies("carol", "read", 2)
			slices.Sort(got)
			if want := []string{"europe", "france", "paris"}; !slices.Equal(got, want) {
				t.Errorf("carol reads %v, want %v", got, want)
			}
			var page companyPage
			s.do("GET", "/v1/companies?permission=manage_members", s.token("bob"), nil, &page)
			names := map[string]string{}
			for _, c := range page.Companies {
				names[c.ID] = c.Name
			}
			if names["france"] != "France" || names["paris"] != "Paris" || len(names) != 2 {
				t.Errorf("bob manages %v, want france and paris with names", names)
			}
		})

		t.Run("membership insert", func(t *testing.T) {
			s.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('dave', 'europe', 'viewer')`)
			s.expect(t, expectation{"dave", "read", "paris", true}, expectation{"dave", "update", "paris", false})
		})
		t.Run("role change", func(t *testing.T) {
			s.exec(`UPDATE company_memberships SET role = 'admin' WHERE user_id = 'dave'`)
			s.expect(t, expectation{"dave", "delete", "paris", true}, expectation{"dave", "manage_owners", "paris", false})
		})
		t.Run("status change", func(t *testing.T) {
			s.exec(`UPDATE company_memberships SET status = 'active' WHERE user_id IN ('erin', 'frank')`)
			s.expect(t, expectation{"erin", "read", "paris", true}, expectation{"frank", "manage_owners", "globex", true})
			s.exec(`UPDATE company_memberships SET status = 'inactive' WHERE user_id = 'erin'`)
			s.expect(t, expectation{"erin", "read", "paris", false})
		})
		t.Run("user changed", func(t *testing.T) {
			s.exec(`UPDATE company_memberships SET user_id = 'dave2' WHERE user_id = 'dave'`)
			s.expect(t, expectation{"dave", "read", "europe", false}, expectation{"dave2", "delete", "europe", true})
		})
		t.Run("company changed", func(t *testing.T) {
			s.exec(`UPDATE company_memberships SET company_id = 'globex' WHERE user_id = 'dave2'`)
			s.expect(t, expectation{"dave2", "read", "europe", false}, expectation{"dave2", "delete", "globex", true})
		})
		t.Run("membership delete", func(t *testing.T) {
			s.exec(`DELETE FROM company_memberships WHERE user_id = 'dave2'`)
			s.expect(t, expectation{"dave2", "read", "globex", false})
		})
		t.Run("parent change", func(t *testing.T) {
			s.exec(`UPDATE companies SET parent_id = 'globex' WHERE id = 'paris'`)
			s.expect(t,
				expectation{"bob", "manage_members", "paris", false},
				expectation{"carol", "update", "paris", false},
				expectation{"frank", "manage_owners", "paris", true},
				expectation{"alice", "read", "paris", false},
			)
			s.exec(`UPDATE companies SET parent_id = NULL WHERE id = 'paris'`)
			s.expect(t, expectation{"frank", "read", "paris", false})
		})
		t.Run("company delete", func(t *testing.T) {
			s.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('gina', 'paris', 'owner')`)
			s.expect(t, expectation{"gina", "read", "paris", true})
			s.exec(`DELETE FROM companies WHERE id = 'paris'`)
			s.expect(t, expectation{"gina", "read", "paris", false}, expectation{"erin", "read", "paris", false})
			// Recreating the ID must not resurrect the old memberships.
			s.exec(`INSERT INTO companies (id, name) VALUES ('paris', 'Paris again')`)
			s.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('hank', 'paris', 'viewer')`)
			s.expect(t, expectation{"hank", "read", "paris", true}, expectation{"gina", "read", "paris", false})
		})
		t.Run("several changes in one transaction", func(t *testing.T) {
			s.exec(`BEGIN;
			INSERT INTO company_memberships (user_id, company_id, role) VALUES ('ivy', 'globex', 'viewer');
			UPDATE company_memberships SET role = 'editor' WHERE user_id = 'ivy';
			UPDATE company_memberships SET role = 'owner' WHERE user_id = 'ivy';
			COMMIT`)
			s.expect(t, expectation{"ivy", "manage_owners", "globex", true})
		})
		t.Run("truncate", func(t *testing.T) {
			s.exec(`TRUNCATE company_memberships`)
			s.expect(t, expectation{"alice", "read", "holding", false}, expectation{"ivy", "read", "globex", false})
			s.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('alice', 'europe', 'viewer')`)
			s.expect(t, expectation{"alice", "read", "france", true}, expectation{"alice", "read", "holding", false})
		})
	})
}

func TestIDsOutsideSpiceDBAlphabet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := startStack(t, `
		INSERT INTO companies (id, name, parent_id) VALUES
		  ('Zürich AG', 'Zürich', NULL),
		  ('zürich.sub/1', 'Sub', 'Zürich AG');
		INSERT INTO company_memberships (user_id, company_id, role) VALUES
		  ('o''neil@example.com', 'Zürich AG', 'editor'),
		  ('*', 'Zürich AG', 'owner');`)
		s.exec(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('名前 with space', 'zürich.sub/1', 'viewer'), ('*', 'zürich.sub/1', 'owner')`)
		s.expect(t,
			expectation{"o'neil@example.com", "update", "zürich.sub/1", true},
			expectation{"名前 with space", "read", "zürich.sub/1", true},
			expectation{"名前 with space", "read", "Zürich AG", false},
		)
		// The wildcard rows were skipped, in the snapshot and in the stream: nobody
		// else gained anything from them.
		for _, company := range []string{"Zürich AG", "zürich.sub/1"} {
			if s.check("somebody-else", "read", company) {
				t.Errorf("a '*' membership row granted read on %s to everybody", company)
			}
		}
		got := s.companies("o'neil@example.com", "read", 1)
		slices.Sort(got)
		if want := []string{"Zürich AG", "zürich.sub/1"}; !slices.Equal(got, want) {
			t.Errorf("listing = %q, want %q", got, want)
		}
		var perms struct {
			Company     string          `json:"company"`
			Permissions map[string]bool `json:"permissions"`
		}
		path := "/v1/companies/" + strings.ReplaceAll("zürich.sub%2F1", "ü", "%C3%BC") + "/permissions"
		if code := s.do("GET", path, s.token("o'neil@example.com"), nil, &perms); code != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, code)
		}
		if perms.Company != "zürich.sub/1" || !perms.Permissions["update"] || perms.Permissions["create"] {
			t.Errorf("permissions = %+v", perms)
		}
		if code := s.do("POST", "/v1/check", s.token("*"), map[string]string{"permission": "read", "company": "Zürich AG"}, nil); code != http.StatusUnauthorized {
			t.Errorf("token with subject * got %d, want 401", code)
		}
		if code := s.do("POST", "/v1/check", serviceToken, map[string]string{"permission": "read", "company": "Zürich AG", "subject": "*"}, nil); code != http.StatusBadRequest {
			t.Errorf("service check for subject * got %d, want 400", code)
		}
	})
}

func TestServiceTokenChecksOnBehalfOfAUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := startStack(t, treeSeed)
		var ans checkAnswer
		if code := s.do("POST", "/v1/check", serviceToken, map[string]string{"permission": "update", "company": "paris", "subject": "carol"}, &ans); code != http.StatusOK || !ans.Allowed {
			t.Errorf("service check = %d %+v, want 200 allowed", code, ans)
		}
		if code := s.do("POST", "/v1/check", s.token("erin"), map[string]string{"permission": "read", "company": "holding", "subject": "alice"}, nil); code != http.StatusForbidden {
			t.Errorf("user naming another subject got %d, want 403", code)
		}
		var bulk struct {
			Results []struct {
				Permission, Company string
				Allowed             bool
			} `json:"results"`
		}
		body := map[string]any{"subject": "bob", "checks": []map[string]string{
			{"permission": "read", "company": "holding"},
			{"permission": "update", "company": "holding"},
			{"permission": "manage_members", "company": "paris"},
		}}
		if code := s.do("POST", "/v1/check/bulk", serviceToken, body, &bulk); code != http.StatusOK {
			t.Fatalf("bulk: %d", code)
		}
		var got []bool
		for _, r := range bulk.Results {
			got = append(got, r.Allowed)
		}
		if want := []bool{true, false, true}; !slices.Equal(got, want) {
			t.Errorf("bulk = %v, want %v", got, want)
		}
	})
}

func TestBadTokensAreRejected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := startStack(t, treeSeed)
		stranger, err := devenv.GenerateIssuer(s.issuer.Issuer(), s.issuer.Audience())
		if err != nil {
			t.Fatal(err)
		}
		mint := func(ti *devenv.Issuer, ttl time.Duration, extra map[string]any) string {
			tok, err := ti.Mint("alice", ttl, extra)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		jwks, err := s.issuer.JWKS()
		if err != nil {
			t.Fatal(err)
		}
		claims := map[string]any{"sub": "alice", "iss": s.issuer.Issuer(), "aud": s.issuer.Audience(), "exp": time.Now().Add(time.Hour).Unix()}
		tokens := map[string]string{
			"expired":            mint(s.issuer, -time.Hour, nil),
			"wrong issuer":       mint(s.issuer, time.Hour, map[string]any{"iss": "https://evil.test"}),
			"wrong audience":     mint(s.issuer, time.Hour, map[string]any{"aud": "someone-else"}),
			"unknown key":        mint(stranger, time.Hour, nil),
			"alg none":           unsignedToken(t, map[string]any{"alg": "none", "typ": "JWT"}, claims, ""),
			"HS256 with jwks":    hmacToken(t, claims, jwks),
			"garbage":            "not.a.token",
			"tampered":           tamper(mint(s.issuer, time.Hour, nil)),
			"not yet valid":      mint(s.issuer, time.Hour, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}),
			"service token typo": serviceToken + "x",
		}
		for name, tok := range tokens {
			t.Run(name, func(t *testing.T) {
				var problem struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				}
				code := s.do("POST", "/v1/check", tok, map[string]string{"permission": "read", "company": "holding"}, &problem)
				if code != http.StatusUnauthorized || problem.Status != http.StatusUnauthorized {
					t.Errorf("status %d (body status %d), want 401", code, problem.Status)
				}
			})
		}
		if !s.check("alice", "read", "holding") {
			t.Error("a good token was refused")
		}
	})
}

func b64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func unsignedToken(t *testing.T, header, claims map[string]any, sig string) string {
	return b64(t, header) + "." + b64(t, claims) + "." + sig
}

// hmacToken is the classic key-confusion attack: HS256 keyed with the
// verifier's public key material.
func hmacToken(t *testing.T, claims map[string]any, secret []byte) string {
	signingInput := b64(t, map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + b64(t, claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"alice"`, `"mallory"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}
