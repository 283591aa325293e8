package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/identity"
)

const (
	testIssuer   = "https://devissuer.test"
	testAudience = "tenantgate-test"
)

// startIssuer serves an issuer whose key lives in keyFile, as the command
// would, and returns its base URL.
func startIssuer(t *testing.T, keyFile string) (*devenv.Issuer, string) {
	t.Helper()
	key, _, err := devenv.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := devenv.NewIssuer(testIssuer, testAudience, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss.Handler(time.Hour, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return iss, srv.URL
}

func get(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// verifier is tenantgate's own token check, pointed at the issuer's JWKS
// URL exactly as the compose file points tenantgate serve at it.
func verifier(t *testing.T, base string) *identity.Verifier {
	t.Helper()
	v, err := identity.New(t.Context(), identity.Config{
		JWKSURL: base + "/.well-known/jwks.json", Issuer: testIssuer, Audience: testAudience,
	})
	if err != nil {
		t.Fatalf("tenantgate cannot load the issuer's key set: %v", err)
	}
	return v
}

func TestMintedTokensPassTenantgateVerification(t *testing.T) {
	iss, base := startIssuer(t, filepath.Join(t.TempDir(), "signing-key.pem"))

	code, body := get(t, base+"/.well-known/jwks.json")
	if code != http.StatusOK {
		t.Fatalf("jwks: status %d: %s", code, body)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("jwks has %d keys, want 1", len(set.Keys))
	}
	if _, leaked := set.Keys[0]["d"]; leaked {
		t.Fatal("the key set publishes the private key")
	}
	if set.Keys[0]["kid"] != iss.KeyID() || set.Keys[0]["alg"] != "ES256" {
		t.Fatalf("published key kid %v alg %v, want %s ES256", set.Keys[0]["kid"], set.Keys[0]["alg"], iss.KeyID())
	}

	v := verifier(t, base)
	tests := []struct {
		name    string
		query   url.Values
		wantTTL time.Duration
	}{
		{"email subject, default ttl", url.Values{"sub": {"alice@acme.example"}}, time.Hour},
		{"subject outside SpiceDB's alphabet", url.Values{"sub": {"Zoë Müller"}}, time.Hour},
		{"explicit ttl", url.Values{"sub": {"bob@acme.example"}, "ttl": {"30m"}}, 30 * time.Minute},
		{"longest ttl", url.Values{"sub": {"bob@acme.example"}, "ttl": {devenv.MaxTTL.String()}}, devenv.MaxTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			code, body := get(t, base+"/token?"+tt.query.Encode())
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 {
				t.Fatalf("body %q is not one line", body)
			}
			token := strings.TrimSpace(body)
			p, err := v.Verify(t.Context(), token)
			if err != nil {
				t.Fatalf("tenantgate rejects the token: %v", err)
			}
			if p.Subject != tt.query.Get("sub") {
				t.Fatalf("subject %q, want %q", p.Subject, tt.query.Get("sub"))
			}
			exp := expiry(t, token)
			if lo, hi := before.Add(tt.wantTTL), time.Now().Add(tt.wantTTL); exp.Before(lo) || exp.After(hi) {
				t.Fatalf("exp %s, want between %s and %s", exp, lo, hi)
			}
		})
	}
}

// expiry reads "exp" without verifying: the verifier above already did.
func expiry(t *testing.T, token string) time.Time {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", token)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return time.Unix(claims.Exp, 0)
}

func TestBadTokenRequests(t *testing.T) {
	_, base := startIssuer(t, filepath.Join(t.TempDir(), "signing-key.pem"))
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"no subject", http.MethodGet, "/token", http.StatusBadRequest},
		{"empty subject", http.MethodGet, "/token?sub=", http.StatusBadRequest},
		{"ttl not a duration", http.MethodGet, "/token?sub=a&ttl=tomorrow", http.StatusBadRequest},
		{"negative ttl", http.MethodGet, "/token?sub=a&ttl=-1h", http.StatusBadRequest},
		{"zero ttl", http.MethodGet, "/token?sub=a&ttl=0s", http.StatusBadRequest},
		{"ttl over the limit", http.MethodGet, "/token?sub=a&ttl=25h", http.StatusBadRequest},
		{"POST is not minting", http.MethodPost, "/token?sub=a", http.StatusMethodNotAllowed},
		{"unknown path", http.MethodGet, "/authorize", http.StatusNotFound},
		{"health", http.MethodGet, "/healthz", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestRestartKeepsTokensValid is why the key is persisted: a token minted
// before a restart of the issuer still verifies against the key set served
// after it.
func TestRestartKeepsTokensValid(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	before, base := startIssuer(t, keyFile)
	_, body := get(t, base+"/token?sub=alice@acme.example")
	token := strings.TrimSpace(body)

	after, restarted := startIssuer(t, keyFile)
	if after.KeyID() != before.KeyID() {
		t.Fatalf("kid changed across a restart: %s, then %s", before.KeyID(), after.KeyID())
	}
	if _, err := verifier(t, restarted).Verify(t.Context(), token); err != nil {
		t.Fatalf("token from before the restart rejected: %v", err)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    config
	}{
		{"defaults", nil, "", config{addr: defaultAddr, issuer: defaultIssuer, audience: defaultAudience, keyFile: defaultKeyFile, defaultTTL: defaultTTL}},
		{"all set", []string{"-addr=:9999", "-issuer=i", "-audience=a", "-key-file=/k.pem", "-jwks-file=/jwks.json", "-default-ttl=1h"}, "", config{addr: ":9999", issuer: "i", audience: "a", keyFile: "/k.pem", jwksFile: "/jwks.json", defaultTTL: time.Hour}},
		{"jwks file is the key file", []string{"-key-file=/d/k.pem", "-jwks-file=/d/./k.pem"}, "is the -key-file", config{}},
		{"empty issuer", []string{"-issuer="}, "must not be empty", config{}},
		{"ttl too long", []string{"-default-ttl=48h"}, "-default-ttl", config{}},
		{"stray argument", []string{"mint"}, "unexpected arguments", config{}},
		{"unknown flag", []string{"-port=1"}, "flag provided but not defined", config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestRunServesUntilCancelled runs the command itself on a free port.
func TestRunServesUntilCancelled(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	// Only run's goroutine writes logs until done is received from, so
	// reading them afterwards needs no lock.
	var logs strings.Builder
	go func() {
		done <- run(ctx, []string{"-addr=127.0.0.1:0", "-key-file=" + keyFile}, &logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(keyFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run did not create its key file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if !strings.Contains(logs.String(), "never expose it") {
			t.Fatalf("no warning that this issuer is for development only in:\n%s", logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}
}

// startRun runs the command as compose does, on a free loopback port, and
// returns its base URL once /healthz answers: when compose's depends_on
// condition service_healthy would let serve start. stop ends the run (and
// the test's end does, if nothing called it).
func startRun(t *testing.T, args ...string) (base string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr=" + addr}, args...), io.Discard) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	base = "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err // for stop
			t.Fatalf("run ended before it was healthy: %v", err)
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run is not healthy after 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJWKSFileIsTheServedKeySet: what compose's serve reads from the volume
// (-jwks-file) is what /.well-known/jwks.json serves, it is there as soon as
// the issuer is healthy, and it verifies the tokens /token mints.
func TestJWKSFileIsTheServedKeySet(t *testing.T) {
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "signing-key.pem"), filepath.Join(dir, "jwks.json")
	base, _ := startRun(t, "-issuer="+testIssuer, "-audience="+testAudience, "-key-file="+keyFile, "-jwks-file="+jwksFile)

	// No wait: healthy means written.
	written, err := os.ReadFile(jwksFile)
	if err != nil {
		t.Fatalf("the issuer is healthy but its JWKS file is not there: %v", err)
	}
	code, served := get(t, base+"/.well-known/jwks.json")
	if code != http.StatusOK {
		t.Fatalf("jwks: status %d: %s", code, served)
	}
	if string(written) != served {
		t.Fatalf("the JWKS file differs from the served key set:\nfile:   %s\nserved: %s", written, served)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(written, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("the JWKS file has %d keys, want 1", len(set.Keys))
	}
	if _, leaked := set.Keys[0]["d"]; leaked {
		t.Fatal("the JWKS file holds the private key")
	}

	// Readable by a reader of another uid: serve mounts the volume as a
	// user of its own image. The private key stays private.
	for file, want := range map[string]os.FileMode{jwksFile: 0o644, keyFile: 0o600} {
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != want {
			t.Errorf("%s: mode %o, want %o", filepath.Base(file), perm, want)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	// tenantgate configured as compose configures serve: the file, no URL.
	v, err := identity.New(t.Context(), identity.Config{JWKSFile: jwksFile, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatalf("tenantgate cannot load the JWKS file: %v", err)
	}
	code, body := get(t, base+"/token?sub=alice@acme.example")
	if code != http.StatusOK {
		t.Fatalf("token: status %d: %s", code, body)
	}
	p, err := v.Verify(t.Context(), strings.TrimSpace(body))
	if err != nil {
		t.Fatalf("a token from /token does not verify against the JWKS file: %v", err)
	}
	if p.Subject != "alice@acme.example" {
		t.Fatalf("subject %q, want alice@acme.example", p.Subject)
	}
}

// TestJWKSFileFollowsTheKeyFile: every start rewrites the file from the key
// it loaded, so a stale or damaged file (another key, a half write of some
// other tool) never outlives a restart, and the same key gives the same
// file.
func TestJWKSFileFollowsTheKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "signing-key.pem"), filepath.Join(dir, "jwks.json")
	args := []string{"-key-file=" + keyFile, "-jwks-file=" + jwksFile}
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jwksFile, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stop := startRun(t, args...)
	stop()
	first, err := os.ReadFile(jwksFile)
	if err != nil {
		t.Fatal(err)
	}
	key, created, err := devenv.LoadOrCreateKey(keyFile)
	if err != nil || created {
		t.Fatalf("key file after the first start: created %v, err %v", created, err)
	}
	iss, err := devenv.NewIssuer(cfg.issuer, cfg.audience, key)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := iss.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(jwks) {
		t.Fatalf("the JWKS file is not the key set of the key file:\nfile: %s\nwant: %s", first, jwks)
	}
	if info, err := os.Stat(jwksFile); err != nil {
		t.Fatal(err)
	} else if perm := info.Mode().Perm(); perm != 0o644 {
		t.Fatalf("the rewritten JWKS file has mode %o, want 644", perm)
	}

	_, stop = startRun(t, args...) // a restart, on the same key
	stop()
	if again, _ := os.ReadFile(jwksFile); string(again) != string(first) {
		t.Fatalf("a restart on the same key changed the JWKS file:\nbefore: %s\nafter:  %s", first, again)
	}
}

// TestUnwritableJWKSFileFailsTheStart: an issuer that cannot publish its
// key set to the file must not become healthy, or serve would start on a
// missing or stale file.
func TestUnwritableJWKSFileFailsTheStart(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// Bounded: an issuer that starts anyway would serve until cancelled.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = run(ctx, []string{
		"-addr=" + addr,
		"-key-file=" + filepath.Join(dir, "signing-key.pem"),
		"-jwks-file=" + filepath.Join(dir, "missing", "jwks.json"),
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "jwks file") {
		t.Fatalf("run = %v, want an error about the jwks file", err)
	}
}
