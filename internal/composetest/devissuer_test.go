package composetest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/tenantgate/tenantgate/internal/identity"
)

// devissuerVolume is the named volume of devissuer's signing key and of the
// JWKS file serve reads.
const devissuerVolume = "devissuer-key"

// mountOf finds the mount of service s that holds containerPath (the one
// with the longest target, as in a container), and the path below it. The
// mount must be a named volume: a file there is what another service can
// share.
func mountOf(t *testing.T, s types.ServiceConfig, containerPath string) (types.ServiceVolumeConfig, string) {
	t.Helper()
	if !path.IsAbs(containerPath) {
		t.Fatalf("service %s: %q is not an absolute path", s.Name, containerPath)
	}
	clean := path.Clean(containerPath)
	var best types.ServiceVolumeConfig
	var rel string
	found := false
	for _, v := range s.Volumes {
		target := path.Clean(v.Target)
		r, ok := strings.CutPrefix(clean, target+"/")
		if !ok || (found && len(target) <= len(path.Clean(best.Target))) {
			continue
		}
		best, rel, found = v, r, true
	}
	if !found {
		t.Fatalf("service %s: %s is on no mount (volumes %+v), so it lives and dies with the container", s.Name, containerPath, s.Volumes)
	}
	if best.Type != types.VolumeTypeVolume {
		t.Fatalf("service %s: %s is on a %s mount, want a named volume", s.Name, containerPath, best.Type)
	}
	return best, rel
}

// TestServeVerifiesDevIssuerTokensThroughTheVolume runs the compose wiring
// of the issuer without Docker: the devissuer binary with the service's own
// arguments, each named volume a directory, and tenantgate's verifier with
// serve's configuration read through serve's mounts. A token devissuer
// mints verifies against the file serve would read, and that file is there
// as soon as devissuer is healthy, which is when serve starts.
func TestServeVerifiesDevIssuerTokensThroughTheVolume(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	// A named volume is one directory, whichever service mounts it.
	volumes := map[string]string{}
	hostPath := func(s types.ServiceConfig, containerPath string) string {
		t.Helper()
		m, rel := mountOf(t, s, containerPath)
		dir, ok := volumes[m.Source]
		if !ok {
			dir = t.TempDir()
			volumes[m.Source] = dir
		}
		return filepath.Join(dir, filepath.FromSlash(rel))
	}

	issuerSvc := service(t, svcDevIssuer)
	bin := filepath.Join(t.TempDir(), "devissuer")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/devissuer")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/devissuer: %v\n%s", err, out)
	}

	// The service's command, with its paths moved onto the volume
	// directories and its listen address onto a free loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := devissuerArgs(t)
	var argv []string
	for _, arg := range issuerSvc.Command {
		name, value, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		switch name {
		case "addr":
			value = addr
		case "key-file", "jwks-file":
			value = hostPath(issuerSvc, value)
		}
		argv = append(argv, "-"+name+"="+value)
	}
	// A file, not a buffer: the process writes it while the test may read.
	logs, err := os.Create(filepath.Join(t.TempDir(), "devissuer.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	logText := func() string { data, _ := os.ReadFile(logs.Name()); return string(data) }
	cmd := exec.Command(bin, argv...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// As docker compose stops it.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// Healthy as compose's healthcheck sees it: the path it probes.
	probe, err := url.Parse(issuerSvc.HealthCheck.Test[len(issuerSvc.HealthCheck.Test)-1])
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	for {
		resp, err := http.Get(base + probe.Path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("devissuer exited before it was healthy: %v\n%s", err, logText())
		case <-ctx.Done():
			t.Fatalf("devissuer not healthy: %v\n%s", err, logText())
		case <-time.After(20 * time.Millisecond):
		}
	}

	// serve, as compose configures it, reads through its own mounts.
	serveSvc := service(t, svcServe)
	cfg := tenantgateConfig(t, serveSvc)
	if cfg.JWKSURL != "" || cfg.JWKSFile == "" {
		t.Fatalf("serve has JWKS URL %q and file %q, want only a file", cfg.JWKSURL, cfg.JWKSFile)
	}
	jwksFile := hostPath(serveSvc, cfg.JWKSFile)
	if want := hostPath(issuerSvc, args["jwks-file"]); jwksFile != want {
		t.Fatalf("serve reads %s, devissuer writes %s", jwksFile, want)
	}
	info, err := os.Stat(jwksFile)
	if err != nil {
		t.Fatalf("devissuer is healthy, but the JWKS file serve reads is not there: %v", err)
	}
	// Readable whatever user serve's image runs as; the key set is public.
	if perm := info.Mode().Perm(); perm&0o444 != 0o444 || perm&0o022 != 0 {
		t.Errorf("JWKS file mode %o: want readable by all, writable by its owner only", perm)
	}

	// The file is the key set devissuer serves to other clients.
	written, err := os.ReadFile(jwksFile)
	if err != nil {
		t.Fatal(err)
	}
	served := httpGet(t, base+"/.well-known/jwks.json")
	if string(written) != served {
		t.Errorf("the JWKS file differs from /.well-known/jwks.json:\nfile:   %s\nserved: %s", written, served)
	}

	verifier, err := identity.New(ctx, identity.Config{
		JWKSURL: cfg.JWKSURL, JWKSFile: jwksFile,
		Issuer: cfg.Issuer, Audience: cfg.Audience, SubjectClaim: cfg.SubjectClaim,
		TokenUse: cfg.TokenUse, TokenType: cfg.TokenType,
	})
	if err != nil {
		t.Fatalf("serve would not start: %v", err)
	}
	// The README's command: /token?sub= for a sample user.
	const user = "alice@acme.example"
	token := strings.TrimSpace(httpGet(t, base+"/token?sub="+url.QueryEscape(user)))
	p, err := verifier.Verify(ctx, token)
	if err != nil {
		t.Fatalf("serve would refuse devissuer's token: %v", err)
	}
	if p.Subject != user {
		t.Errorf("subject %q, want %q", p.Subject, user)
	}
}

func httpGet(t *testing.T, rawURL string) string {
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", rawURL, resp.Status, body)
	}
	return string(body)
}
