package app

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/console"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/store"
)

// demoIssuer is the issuer and audience of the demo's own tokens.
const demoIssuer = "tenantgate-demo"

// demoTokenTTL keeps printed commands usable for a working day.
const demoTokenTTL = 12 * time.Hour

// Demo runs the whole product on sample data: a Postgres (throwaway unless
// DatabaseURL is given), the migrations, embedded SpiceDB, the sync and the
// gateway with a demo token issuer. It prints a curl command per sample user
// with the answer the gateway gave, then serves until ctx ends.
func Demo(ctx context.Context, cfg Config, logger *slog.Logger, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		fmt.Fprintln(out, "Starting a throwaway PostgreSQL (removed on exit)...")
		pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{Logger: logger})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer pg.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // best effort on the way out
		if err := pg.CreateDatabase(ctx, "tenantgate_demo", ""); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		cfg.DatabaseURL = pg.URL("tenantgate_demo")
	}
	if err := Migrate(ctx, cfg, logger); err != nil {
		return err
	}
	if err := loadDemoData(ctx, cfg.DatabaseURL, logger); err != nil {
		return err
	}
	issuer, stopJWKS, err := startDemoIssuer()
	if err != nil {
		return err
	}
	defer stopJWKS()
	cfg.JWKSURL, cfg.JWKSFile = issuer.jwksURL, ""
	cfg.Issuer, cfg.Audience = demoIssuer, demoIssuer
	if cfg.GroupsClaim == "" && len(cfg.PlatformRoles) == 0 {
		cfg.GroupsClaim = demoGroupsClaim
		cfg.PlatformRoles = []string{demoPlatformGroup + "=" + string(demoPlatformRole)}
	}
	cfg.ConsoleDemo = console.Config{DemoUsers: demoConsoleUsers(), DemoSignIn: func(_ context.Context, user string) (string, error) {
		return issuer.Mint(user, demoTokenTTL, nil)
	}}
	if cfg.Listener == nil {
		if cfg.Listener, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("demo: listen %s (pick another with --http-addr): %w", cfg.HTTPAddr, err)
		}
	}
	base := baseURL(cfg.Listener.Addr())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, cfg, logger) }()
	if err := waitReady(ctx, base, served); err != nil {
		return err
	}
	examples := demoExamples
	if authz.Consent(cfg.MembershipConsent) == authz.ConsentRequired {
		examples = append(slices.Clone(examples), demoInvitation)
	}
	if err := printExamples(ctx, out, base, issuer, examples); err != nil {
		return err
	}
	if authz.Consent(cfg.MembershipConsent) != authz.ConsentRequired {
		fmt.Fprintln(out, "\n# Grants above take effect at once. `tenantgate demo --membership-consent required` shows them as invitations the invitee accepts.")
	}
	if cfg.Console {
		fmt.Fprintf(out, "\nConsole: %s/console/ (sign in as a sample user with one click)", base)
	}
	fmt.Fprintf(out, "\nGateway at %s (Prometheus metrics at %s/metrics). Press Ctrl-C to stop.\n", base, base)
	return <-served
}

func loadDemoData(ctx context.Context, databaseURL string, logger *slog.Logger) error {
	st, err := store.Open(ctx, databaseURL, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, c := range demoCompanies {
		if err := st.UpsertCompany(ctx, c); err != nil {
			return fmt.Errorf("demo: company %s: %w", c.ID, err)
		}
	}
	for _, m := range demoMemberships {
		if err := st.UpsertMembership(ctx, m); err != nil {
			return fmt.Errorf("demo: membership %s in %s: %w", m.UserID, m.CompanyID, err)
		}
	}
	return nil
}

type demoTokens struct {
	*devenv.Issuer
	jwksURL string
}

// startDemoIssuer serves the demo issuer's key set over HTTP, the way an
// identity provider would, so the gateway runs its real JWKS URL path.
func startDemoIssuer() (*demoTokens, func(), error) {
	ti, err := devenv.GenerateIssuer(demoIssuer, demoIssuer)
	if err != nil {
		return nil, nil, fmt.Errorf("demo: token issuer: %w", err)
	}
	jwksURL, stop, err := ti.ServeJWKS()
	if err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	return &demoTokens{Issuer: ti, jwksURL: jwksURL}, stop, nil
}

// baseURL is how a user on this machine reaches addr.
func baseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func waitReady(ctx context.Context, base string, served <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			return fmt.Errorf("demo: gateway stopped before it was ready: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return errors.New("demo: gateway not ready within 2 minutes")
}

// demoRequest is one HTTP call as the demo prints and makes it.
type demoRequest struct {
	method, path string
	body         string
}

func (e demoExample) request() demoRequest {
	switch {
	case e.authzen:
		body, _ := json.Marshal(map[string]any{
			"subject":  map[string]string{"type": "user", "id": e.check.User},
			"action":   map[string]string{"name": string(e.check.Permission)},
			"resource": map[string]string{"type": "company", "id": e.check.Company},
		})
		return demoRequest{method: http.MethodPost, path: "/access/v1/evaluation", body: string(body)}
	case e.check != nil:
		q := map[string]any{"permission": e.check.Permission, "company": e.check.Company}
		if e.explain {
			q["explain"] = true
		}
		body, _ := json.Marshal(q)
		return demoRequest{method: http.MethodPost, path: "/v1/check", body: string(body)}
	case e.listPermission != "":
		return demoRequest{method: http.MethodGet, path: "/v1/companies?permission=" + string(e.listPermission)}
	case e.grant != nil:
		body, _ := json.Marshal(map[string]string{"role": string(e.grant.Role)})
		return demoRequest{method: http.MethodPut, body: string(body),
			path: "/v1/companies/" + url.PathEscape(e.grant.CompanyID) + "/members/" + url.PathEscape(e.grant.UserID)}
	case e.accept != "":
		return demoRequest{method: http.MethodPost, path: "/v1/companies/" + url.PathEscape(e.accept) + "/members/" + url.PathEscape(e.user) + "/accept"}
	default:
		return demoRequest{method: http.MethodGet, path: "/v1/companies/" + url.PathEscape(e.permissionsOf) + "/permissions"}
	}
}

func (e demoExample) question() string {
	switch {
	case e.check != nil && e.explain:
		return fmt.Sprintf("why may %s not %s %s?", e.user, e.check.Permission, e.check.Company)
	case e.check != nil:
		return fmt.Sprintf("may %s %s %s?", e.user, e.check.Permission, e.check.Company)
	case e.listPermission != "":
		return fmt.Sprintf("which companies may %s %s?", e.user, e.listPermission)
	case e.grant != nil && e.grant.UserID == e.user:
		return fmt.Sprintf("may %s make themselves %s of %s?", e.user, e.grant.Role, e.grant.CompanyID)
	case e.grant != nil:
		return fmt.Sprintf("may %s make %s %s of %s?", e.user, e.grant.UserID, e.grant.Role, e.grant.CompanyID)
	case e.accept != "":
		return fmt.Sprintf("%s accepts the invitation to %s", e.user, e.accept)
	default:
		return fmt.Sprintf("what may %s do on %s?", e.user, e.permissionsOf)
	}
}

func printExamples(ctx context.Context, out io.Writer, base string, issuer *demoTokens, examples []demoExample) error {
	fmt.Fprintf(out, "\ntenantgate demo: %d companies, %d memberships. Try these (tokens valid for %s):\n",
		len(demoCompanies), len(demoMemberships), demoTokenTTL)
	client := &http.Client{Timeout: 10 * time.Second}
	tokens := map[string]string{}
	for _, ex := range examples {
		token, ok := tokens[ex.user]
		if !ok {
			var claims map[string]any
			if ex.groups != nil {
				claims = map[string]any{demoGroupsClaim: ex.groups}
			}
			var err error
			if token, err = issuer.Mint(ex.user, demoTokenTTL, claims); err != nil {
				return fmt.Errorf("demo: mint token: %w", err)
			}
			tokens[ex.user] = token
		}
		req := ex.request()
		answer, err := demoCall(ctx, client, base, token, req, cmp.Or(ex.wantStatus, http.StatusOK))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n# %s (%s)\n", ex.question(), ex.why)
		fmt.Fprintln(out, curlCommand(base, token, req))
		fmt.Fprintf(out, "# => %s\n", answer)
	}
	return nil
}

func curlCommand(base, token string, req demoRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "curl -s")
	if req.method != http.MethodGet {
		fmt.Fprintf(&b, " -X %s", req.method)
	}
	fmt.Fprintf(&b, " '%s%s' \\\n  -H 'Authorization: Bearer %s'", base, req.path, token)
	if req.body != "" {
		fmt.Fprintf(&b, " \\\n  -H 'Content-Type: application/json' -d '%s'", req.body)
	}
	return b.String()
}

// demoCall makes req and returns its answer in one line: the JSON body
// without what differs between calls (consistency token, request ID),
// preceded by the status when it is not 200. Another status than want is an
// error: the demo's data no longer says what its examples claim.
func demoCall(ctx context.Context, client *http.Client, base, token string, req demoRequest, want int) (string, error) {
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, base+req.path, body)
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(r)
	if err != nil {
		return "", fmt.Errorf("demo: %s %s: %w", req.method, req.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != want {
		return "", fmt.Errorf("demo: %s %s: status %d, want %d: %s", req.method, req.path, resp.StatusCode, want, raw)
	}
	answer, err := compactAnswer(raw)
	if err != nil || want == http.StatusOK {
		return answer, err
	}
	return fmt.Sprintf("HTTP %d %s", want, answer), nil
}

func compactAnswer(raw []byte) (string, error) {
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("demo: answer %q: %w", raw, err)
	}
	delete(v, "consistency_token")
	delete(v, "request_id")
	// AuthZEN's decision carries it in its context.
	if c, ok := v["context"].(map[string]any); ok {
		delete(c, "consistency_token")
		if len(c) == 0 {
			delete(v, "context")
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return strings.TrimSpace(b.String()), nil
}
