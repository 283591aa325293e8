package client

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
)

// DefaultTimeout bounds each call unless WithTimeout says otherwise. It is
// above the gateway's own request timeout (10 s), so that the gateway's 503
// arrives before the client gives up.
const DefaultTimeout = 15 * time.Second

// maxAnswerBytes bounds a successful answer: a page of 1000 companies with
// 500-byte names, or a large company's effective members, fit well within.
const maxAnswerBytes = 32 << 20

const (
	jsonContentType    = "application/json"
	problemContentType = "application/problem+json"
	consistencyHeader  = "Consistency-Token"
)

// Client calls one tenantgate gateway. It is safe for concurrent use; As
// derives clients that share its connections.
type Client struct {
	base    string // scheme://host[/prefix], without a trailing slash
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger
	// bearer is sent with every call: the service token, or the user's
	// token of a client made by As.
	bearer  string
	service bool
	// retry retries reads; nil: no call is retried.
	retry *retrier
}

// Option configures a Client made by New.
type Option func(*Client)

// WithHTTPClient sends the requests through hc (its transport, proxies,
// TLS settings) instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithServiceToken makes the client call as a trusted backend, which may
// ask the check calls about any user (Check.Subject, BulkCheck.Subject).
// The other routes are the users' own and answer the service token 403.
func WithServiceToken(token string) Option {
	return func(c *Client) { c.bearer, c.service = token, true }
}

// WithTimeout bounds each call, its retries included, on top of the
// deadline of its context; zero leaves only the context's. The default is
// DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithLogger is where Require logs the failures it answers 503 for, whose
// cause the answer itself does not carry. The default logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// New makes a client of the gateway at baseURL (http or https, with an
// optional path prefix when a proxy serves the gateway below one).
func New(baseURL string, opts ...Option) (*Client, error) {
	base, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, http: http.DefaultClient, timeout: DefaultTimeout, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(c)
	}
	if c.timeout < 0 {
		return nil, fmt.Errorf("tenantgate: new client: negative timeout %v", c.timeout)
	}
	if c.retry != nil {
		if err := c.retry.policy.validate(); err != nil {
			return nil, fmt.Errorf("tenantgate: new client: %w", err)
		}
	}
	if c.service {
		if err := validToken(c.bearer); err != nil {
			return nil, fmt.Errorf("tenantgate: new client: service token: %w", err)
		}
	}
	return c, nil
}

func parseBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("tenantgate: new client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("tenantgate: new client: base URL %q: want http(s)://host[:port][/prefix]", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// As returns a client that calls with the user's bearer token: the checks
// are then about that user, and the management calls made as that user.
// It shares c's connections and settings; a service token of c is not sent.
func (c *Client) As(userToken string) *Client {
	scoped := *c
	scoped.bearer, scoped.service = userToken, false
	return &scoped
}

// validToken refuses what cannot be sent as "Bearer <token>".
func validToken(token string) error {
	switch {
	case token == "":
		return errors.New("empty")
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("holds spaces or control characters")
	}
	return nil
}

// call is one request to the gateway.
type call struct {
	op     string // names the call in errors
	method string
	path   string // escaped, from the root of the API: "/v1/check"
	query  url.Values
	// consistency is sent as the Consistency-Token header, the one place
	// the GET routes take it.
	consistency string
	body        any // encoded as JSON; nil sends none
	// read marks a POST that changes nothing (the checks), which may be
	// retried like a GET.
	read bool
}

// idempotent reports a call that changes nothing, whatever its answer.
func (cl call) idempotent() bool { return cl.method == http.MethodGet || cl.read }

// do sends cl and decodes a 2xx answer into out (nil: the answer has no
// body), retrying a read as the client's policy allows. It returns the
// answer's header, where a 204 carries its token.
func (c *Client) do(ctx context.Context, cl call, out any) (http.Header, error) {
	if err := validToken(c.bearer); err != nil {
		if c.bearer == "" {
			return nil, fmt.Errorf("tenantgate: %s: %w", cl.op, ErrNoCredentials)
		}
		return nil, fmt.Errorf("tenantgate: %s: bearer token: %w", cl.op, err)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if c.retry == nil || !cl.idempotent() {
		return c.once(ctx, cl, out)
	}
	c.retry.budget.deposit(time.Now())
	for attempt := 1; ; attempt++ {
		h, err := c.once(ctx, cl, out)
		wait, again := c.retry.next(ctx, attempt, err)
		// A context that ends during the wait ends the call with the
		// answer it had.
		if !again || !sleep(ctx, wait) {
			return h, err
		}
	}
}

// once sends cl one time.
func (c *Client) once(ctx context.Context, cl call, out any) (http.Header, error) {
	req, err := c.newRequest(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("tenantgate: %s: %w", cl.op, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tenantgate: %s: %w", cl.op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBytes)) // a cut body still has its status
		return nil, errorOf(cl.op, resp, body)
	}
	if err := decodeAnswer(resp.Body, out); err != nil {
		return nil, fmt.Errorf("tenantgate: %s: answer of %s: %w", cl.op, resp.Status, err)
	}
	return resp.Header, nil
}

func (c *Client) newRequest(ctx context.Context, cl call) (*http.Request, error) {
	var body io.Reader
	if cl.body != nil {
		raw, err := json.Marshal(cl.body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	target := c.base + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.bearer)
	req.Header.Set("Accept", jsonContentType+", "+problemContentType)
	if cl.body != nil {
		req.Header.Set("Content-Type", jsonContentType)
	}
	if cl.consistency != "" {
		req.Header.Set(consistencyHeader, cl.consistency)
	}
	return req, nil
}

// decodeAnswer reads one JSON document into out. An answer larger than
// maxAnswerBytes is an error rather than a truncated document.
func decodeAnswer(r io.Reader, out any) error {
	raw, err := io.ReadAll(io.LimitReader(r, maxAnswerBytes+1))
	if err != nil {
		return err
	}
	if len(raw) > maxAnswerBytes {
		return fmt.Errorf("larger than %d bytes", maxAnswerBytes)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// companyPath is the path of a company route. IDs are opaque and may hold
// '/', so each segment is escaped. An empty segment, "." or ".." is refused
// here: URL cleaning would send the request to another route, whose answer
// would not be about that ID.
func companyPath(id string, rest ...string) (string, error) {
	p := "/v1/companies"
	for _, seg := range append([]string{id}, rest...) {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: id %q cannot be used in a URL path", ErrBadRequest, seg)
		}
		p += "/" + url.PathEscape(seg)
	}
	return p, nil
}
