package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/tenantgate/tenantgate/client"
	"github.com/tenantgate/tenantgate/internal/authz"
)

// explainTimeout bounds the one call explain makes.
const explainTimeout = 15 * time.Second

// Explain asks a running gateway, as the trusted service, why a user may or
// may not do a permission on a company, and prints the answer: the text an
// operator reads, or the JSON a script parses. It goes through the gateway,
// with the Go client applications use, rather than to SpiceDB because only
// the gateway knows what it answers: its revision, its index, its embedded
// SpiceDB.
func Explain(ctx context.Context, cfg Config, _ *slog.Logger, out io.Writer) error {
	if err := cfg.validateExplain(); err != nil {
		return err
	}
	gw, err := client.New(cfg.GatewayURL, client.WithServiceToken(cfg.ServiceToken), client.WithTimeout(explainTimeout))
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	d, err := gw.Check(ctx, client.Check{Subject: cfg.ExplainUser, Company: cfg.ExplainCompany,
		Permission: client.Permission(cfg.ExplainPermission), Explain: true})
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	if d.Explanation == nil {
		return fmt.Errorf("explain: %s answered without an explanation", cfg.GatewayURL)
	}
	if cfg.Output == "json" {
		indented, err := json.MarshalIndent(d.Explanation, "", "  ")
		if err != nil {
			return fmt.Errorf("explain: %w", err)
		}
		_, err = fmt.Fprintln(out, string(indented))
		return err
	}
	_, err = fmt.Fprintf(out, "%s(at revision %s)\n", d.Explanation.Text, d.ConsistencyToken)
	return err
}

func (c Config) validateExplain() error {
	var errs []error
	if err := authz.ValidateUserID(c.ExplainUser); err != nil {
		errs = append(errs, fmt.Errorf("--user: %w", err))
	}
	if err := authz.ValidateCompanyID(c.ExplainCompany); err != nil {
		errs = append(errs, fmt.Errorf("--company: %w", err))
	}
	if _, err := authz.ParsePermission(c.ExplainPermission); err != nil {
		errs = append(errs, fmt.Errorf("--permission: %w", err))
	}
	if c.ServiceToken == "" {
		errs = append(errs, fmt.Errorf("--service-token (or %s) is required: explain asks as the trusted service", EnvName("service-token")))
	}
	if u, err := url.Parse(c.GatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--gateway-url %q: want the http(s) URL of a running tenantgate serve", c.GatewayURL))
	}
	if c.Output != "text" && c.Output != "json" {
		errs = append(errs, fmt.Errorf("--output %q: want text or json", c.Output))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	return nil
}
