package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

const proxiedSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('acme', 'Acme', NULL),
  ('acme-fr', 'Acme France', 'acme'),
  ('globex', 'Globex', NULL);
INSERT INTO company_memberships (user_id, company_id, role) VALUES
  ('alice', 'acme', 'owner'),
  ('vic', 'acme-fr', 'viewer'),
  ('gil', 'globex', 'owner');
`

// proxiedRoutes is the route file of the protected API in front of which
// nginx asks tenantgate.
const proxiedRoutes = `
routes:
  - methods: [GET, HEAD]
    path: /api/companies/{company}/**
    permission: read
  - methods: [PUT, PATCH, POST]
    path: /api/companies/{company}/**
    permission: update
  - methods: [DELETE]
    path: /api/companies/{company}
    permission: delete
  - methods: [POST]
    path: /api/invoices
    permission: update
    company: {header: X-Company-ID}
`

// nginxConf puts nginx on listen in front of upstream, asking tenantgate
// (at gateway) with auth_request, as docs/proxies.md shows.
const nginxConf = `
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s;
    location /api/ {
      auth_request /_tenantgate;
      auth_request_set $tg_user $upstream_http_x_tenantgate_user;
      auth_request_set $tg_company $upstream_http_x_tenantgate_company;
      proxy_set_header X-Tenantgate-User $tg_user;
      proxy_set_header X-Tenantgate-Company $tg_company;
      proxy_pass http://%[3]s;
    }
    location = /_tenantgate {
      internal;
      proxy_pass http://%[4]s/v1/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
    }
  }
}
`

// upstreamSeen is what the protected API saw of a request.
type upstreamSeen struct {
	Method, Path, User, Company string
}

// startNginx runs Debian's nginx with nginxConf; a machine without it fails
// the test (.ci/run installs it).
func startNginx(t *testing.T, upstream, gateway string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nginx"); statErr != nil {
			t.Fatalf("nginx not found (%v): install Debian's nginx package, as .ci/run does", err)
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	listen := freeAddr(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, listen, upstream, gateway), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := testutil.StartProcess(testutil.ProcessOptions{Path: bin, Args: []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")},
		LogFile: filepath.Join(dir, "nginx.out")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(context.Background())
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error log:\n%s", log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			conn.Close()
			return "http://" + listen
		}
		select {
		case <-p.Done():
			t.Fatalf("nginx exited: %s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s: %v", listen, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a listener that has no event to wait on
	}
}

// TestForwardAuthBehindNginx drives real HTTP requests through a real nginx
// whose auth_request asks tenantgate, to a small upstream that records what
// reached it.
func TestForwardAuthBehindNginx(t *testing.T) {
	routeFile := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routeFile, []byte(proxiedRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startEmbeddedStackWith(t, func(c *app.Config) { c.Routes = routeFile }, proxiedSeed)
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = json.NewEncoder(w).Encode(upstreamSeen{Method: r.Method, Path: r.URL.Path,
			User: r.Header.Get("X-Tenantgate-User"), Company: r.Header.Get("X-Tenantgate-Company")})
	}))
	t.Cleanup(upstream.Close)
	proxy := startNginx(t, strings.TrimPrefix(upstream.URL, "http://"), strings.TrimPrefix(s.baseURL(), "http://"))

	send := func(t *testing.T, method, path, bearer string, header http.Header) (int, upstreamSeen, bool) {
		t.Helper()
		req, err := http.NewRequest(method, proxy+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		before := calls.Load()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		reached := calls.Load() > before
		var seen upstreamSeen
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(raw, &seen); err != nil {
				t.Fatalf("upstream answer %q: %v", raw, err)
			}
		}
		return resp.StatusCode, seen, reached
	}

	tests := []struct {
		name, method, path, user string
		header                   http.Header
		status                   int
		company                  string
	}{
		{"an owner reads", "GET", "/api/companies/acme/invoices/7", "alice", nil, 200, "acme"},
		{"inherited down the tree", "DELETE", "/api/companies/acme-fr", "alice", nil, 200, "acme-fr"},
		{"a viewer reads", "GET", "/api/companies/acme-fr/invoices", "vic", nil, 200, "acme-fr"},
		{"a viewer may not write", "POST", "/api/companies/acme-fr/invoices", "vic", nil, 403, ""},
		{"another tenant", "GET", "/api/companies/globex/invoices", "alice", nil, 403, ""},
		{"no token", "GET", "/api/companies/acme/invoices", "", nil, 401, ""},
		{"a route without a rule", "GET", "/api/other", "alice", nil, 403, ""},
		{"the company from a header", "POST", "/api/invoices", "gil", http.Header{"X-Company-Id": {"globex"}}, 200, "globex"},
		{"a header naming another tenant", "POST", "/api/invoices", "gil", http.Header{"X-Company-Id": {"acme"}}, 403, ""},
		{"a forged user header is overwritten", "GET", "/api/companies/globex/x", "gil", http.Header{"X-Tenantgate-User": {"alice"}}, 200, "globex"},
		// nginx routes on the normalised path (/api/companies/acme/x) but
		// passes the raw one upstream; tenantgate refuses the raw one, and
		// nginx turns that refusal into an error: never the upstream.
		{"a dot segment never reaches the upstream", "GET", "/api/companies/globex/../acme/x", "gil", nil, 500, ""},
		{"an encoded slash never reaches the upstream", "GET", "/api/companies/globex%2F..%2Facme/x", "gil", nil, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bearer := ""
			if tt.user != "" {
				bearer = s.token(tt.user)
			}
			status, seen, reached := send(t, tt.method, tt.path, bearer, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			if reached != (tt.status == 200) {
				t.Fatalf("upstream reached: %v, status %d", reached, status)
			}
			if tt.status == 200 && (seen.User != tt.user || seen.Company != tt.company || seen.Method != tt.method) {
				t.Errorf("upstream saw %+v, want user %s, company %s, method %s", seen, tt.user, tt.company, tt.method)
			}
		})
	}

	// A grant through the management API answers with a consistency token;
	// the grantee's next request through nginx that carries it is decided
	// on the grant at once.
	t.Run("read your writes through the proxy", func(t *testing.T) {
		var grant struct {
			ConsistencyToken string `json:"consistency_token"`
		}
		if code := s.do("PUT", "/v1/companies/globex/members/ned", s.token("gil"), map[string]string{"role": "editor"}, &grant); code != http.StatusOK {
			t.Fatalf("grant: status %d", code)
		}
		status, seen, _ := send(t, "PATCH", "/api/companies/globex/settings", s.token("ned"), http.Header{"Consistency-Token": {grant.ConsistencyToken}})
		if status != http.StatusOK || seen.User != "ned" {
			t.Errorf("status %d, upstream saw %+v", status, seen)
		}
	})
}
