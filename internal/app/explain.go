package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// explainTimeout bounds the one call explain makes.
const explainTimeout = 15 * time.Second

// Explain asks a running gateway, as the trusted service, why a user may or
// may not do a permission on a company, and prints the answer: the text an
// operator reads, or the JSON a script parses. It goes through the gateway
// rather than to SpiceDB because only the gateway knows what it answers:
// its revision, its index, its embedded SpiceDB.
func Explain(ctx context.Context, cfg Config, _ *slog.Logger, out io.Writer) error {
	if err := cfg.validateExplain(); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{ // strings and a bool cannot fail
		"subject": cfg.ExplainUser, "company": cfg.ExplainCompany,
		"permission": cfg.ExplainPermission, "explain": true,
	})
	ctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	endpoint := strings.TrimSuffix(cfg.GatewayURL, "/") + "/v1/check"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.ServiceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("explain: ask %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("explain: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("explain: %s answered %s: %s", endpoint, resp.Status, problemDetail(raw))
	}
	var answer struct {
		ConsistencyToken string          `json:"consistency_token"`
		Explanation      json.RawMessage `json:"explanation"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Explanation == nil {
		return fmt.Errorf("explain: %s answered without an explanation: %.200s", endpoint, raw)
	}
	if cfg.Output == "json" {
		var indented bytes.Buffer
		if err := json.Indent(&indented, answer.Explanation, "", "  "); err != nil {
			return fmt.Errorf("explain: %w", err)
		}
		_, err := fmt.Fprintln(out, indented.String())
		return err
	}
	var text struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(answer.Explanation, &text); err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	_, err = fmt.Fprintf(out, "%s(at revision %s)\n", text.Text, answer.ConsistencyToken)
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

// problemDetail is the detail of a problem document, or the start of a
// body that is not one.
func problemDetail(raw []byte) string {
	var p struct {
		Detail string `json:"detail"`
		Title  string `json:"title"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Title == "" {
		return fmt.Sprintf("%.200s", raw)
	}
	if p.Detail == "" {
		return p.Title
	}
	return p.Detail
}
