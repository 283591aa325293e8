// Command devissuer is the development identity provider of the docker
// compose stack. It publishes a JSON Web Key Set and mints ES256 tokens for
// whatever subject it is asked for, without asking who is asking: it exists so
// a local stack can be tried with real, verified JWTs, and must never be
// reachable from anywhere but the developer's own machine.
//
//	GET /.well-known/jwks.json        the public key set, for clients that fetch it
//	GET /token?sub=USER[&ttl=DURATION] a signed token for USER, as plain text
//	GET /healthz                      liveness
//
// The signing key lives in -key-file (PKCS#8 PEM, mode 0600), created on
// first start, so a restart keeps tokens already handed out valid.
//
// With -jwks-file, the same public key set that /.well-known/jwks.json
// serves is also written to that file (mode 0644: public, and readable by
// another container's user), atomically and at every start, after the key
// is loaded or created and before the server listens, so that once
// /healthz answers the file is there and matches the key. tenantgate reads
// it with --jwks-file: tenantgate fetches a JWKS URL only over https, or
// plain http to a loopback address, and this issuer serves plain http on
// the compose network. -jwks-file must not name the key file.
//
// The issuer is internal/devenv's, the same one the demo and the tests mint
// their tokens with; this command adds the flags and the key file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

// Defaults of the flags; the compose file sets every one of them anyway.
const (
	defaultAddr     = ":8081"
	defaultIssuer   = "tenantgate-dev"
	defaultAudience = "tenantgate"
	defaultKeyFile  = "/var/lib/devissuer/signing-key.pem"
	// defaultJWKSFile is empty: the key set is written to no file.
	defaultJWKSFile = ""
	defaultTTL      = 12 * time.Hour
	// shutdownTimeout is short: requests here are a key set or one
	// signature, and compose's stop grace period is 10 s.
	shutdownTimeout = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devissuer:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	addr, issuer, audience, keyFile, jwksFile string
	defaultTTL                                time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("devissuer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", defaultAddr, "address to serve the key set and tokens on")
	fs.StringVar(&c.issuer, "issuer", defaultIssuer, `"iss" of every token (tenantgate's --issuer)`)
	fs.StringVar(&c.audience, "audience", defaultAudience, `"aud" of every token (tenantgate's --audience)`)
	fs.StringVar(&c.keyFile, "key-file", defaultKeyFile, "PKCS#8 PEM file of the ES256 signing key; created when missing")
	fs.StringVar(&c.jwksFile, "jwks-file", defaultJWKSFile, "also write the public key set (JWKS) to this file at start (tenantgate's --jwks-file); empty writes none")
	fs.DurationVar(&c.defaultTTL, "default-ttl", defaultTTL, "lifetime of a token whose request names no ttl")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case c.issuer == "" || c.audience == "":
		return config{}, errors.New("-issuer and -audience must not be empty")
	case c.defaultTTL <= 0 || c.defaultTTL > devenv.MaxTTL:
		return config{}, fmt.Errorf("-default-ttl %s: want more than 0 and at most %s", c.defaultTTL, devenv.MaxTTL)
	case c.jwksFile != "" && filepath.Clean(c.jwksFile) == filepath.Clean(c.keyFile):
		// The public key set would overwrite the private key.
		return config{}, fmt.Errorf("-jwks-file %s is the -key-file", c.jwksFile)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	key, created, err := devenv.LoadOrCreateKey(cfg.keyFile)
	if err != nil {
		return err
	}
	iss, err := devenv.NewIssuer(cfg.issuer, cfg.audience, key)
	if err != nil {
		return err
	}
	// Before listening: whoever waits for /healthz (compose's serve) finds
	// the file written, and written for this key.
	if cfg.jwksFile != "" {
		if err := iss.WriteJWKSFile(cfg.jwksFile); err != nil {
			return fmt.Errorf("jwks file: %w", err)
		}
	}
	logger.Warn("development token issuer: mints a token for anyone who asks; never expose it",
		"issuer", cfg.issuer, "audience", cfg.audience, "kid", iss.KeyID(), "key_file", cfg.keyFile, "key_created", created, "jwks_file", cfg.jwksFile)

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.addr, err)
	}
	srv := &http.Server{
		Handler:           iss.Handler(cfg.defaultTTL, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
