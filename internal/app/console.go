package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/console"
)

// oidcDiscoveryTimeout bounds one read of the issuer's discovery document;
// the startup retries bound them all.
const oidcDiscoveryTimeout = 10 * time.Second

// maxDiscoveryBytes is far above any real discovery document.
const maxDiscoveryBytes = 1 << 20

// consoleHandler builds the web console serve mounts, nil with
// --console=false. With --console-oidc-client-id it first reads the
// issuer's endpoints, retried like the other steps of the start.
func consoleHandler(ctx context.Context, start *startup, cfg Config, logger *slog.Logger) (http.Handler, error) {
	if !cfg.Console {
		return nil, nil
	}
	ccfg := cfg.ConsoleDemo
	if cfg.ConsoleOIDCClientID != "" {
		oidc, err := retryStartup(ctx, start, "oidc discovery", func(ctx context.Context) (*console.OIDC, error) {
			return discoverOIDC(ctx, http.DefaultClient, cfg.Issuer)
		})
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		oidc.ClientID = cfg.ConsoleOIDCClientID
		ccfg.OIDC = oidc
	}
	h, err := console.Handler(ccfg, logger)
	if err != nil {
		return nil, fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	return h, nil
}

// discoverOIDC reads the authorization and token endpoints from the
// issuer's OpenID Connect discovery document. What no retry cures (an
// issuer that is no URL, answers 4xx, or names no such endpoints) wraps
// authz.ErrInvalid; an issuer that cannot be reached or answers 5xx may
// be starting.
func discoverOIDC(ctx context.Context, client *http.Client, issuer string) (*console.OIDC, error) {
	if u, err := url.Parse(issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("oidc discovery: %w: --issuer %q must be the identity provider's URL for --console-oidc-client-id", authz.ErrInvalid, issuer)
	}
	where := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, oidcDiscoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery: %w: %w", authz.ErrInvalid, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= http.StatusInternalServerError:
		return nil, fmt.Errorf("oidc discovery: %s answered %s", where, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("oidc discovery: %w: %s answered %s", authz.ErrInvalid, where, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes))
	if err != nil {
		return nil, fmt.Errorf("oidc discovery: %w", err)
	}
	var doc struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("oidc discovery: %w: %s is not a discovery document: %w", authz.ErrInvalid, where, err)
	}
	// OpenID Connect Discovery 1.0, section 4.3: a document naming another
	// issuer must not be used.
	if doc.Issuer != issuer {
		return nil, fmt.Errorf("oidc discovery: %w: %s names the issuer %q, not --issuer %q", authz.ErrInvalid, where, doc.Issuer, issuer)
	}
	if doc.AuthorizationEndpoint == "" || doc.TokenEndpoint == "" {
		return nil, fmt.Errorf("oidc discovery: %w: %s must name both authorization_endpoint and token_endpoint for the console's sign-in", authz.ErrInvalid, where)
	}
	return &console.OIDC{AuthorizationEndpoint: doc.AuthorizationEndpoint, TokenEndpoint: doc.TokenEndpoint, Scope: "openid"}, nil
}
