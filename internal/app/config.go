package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/console"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/spicedb"
)

// Config is every setting of every command. Each field with a flag tag is a
// command-line flag --name that also reads TENANTGATE_NAME (upper-cased,
// dashes as underscores).
type Config struct {
	DatabaseURL     string `flag:"database-url" usage:"application Postgres URL (falls back to DATABASE_URL); demo: empty starts a throwaway server"`
	DatabaseURLFile string `flag:"database-url-file" usage:"serve and sync: file holding the application Postgres URL (instead of --database-url), read again every few seconds; a changed password is used by new connections"`

	SpiceDBEndpoint        string `flag:"spicedb-endpoint" usage:"host:port of a remote SpiceDB; empty runs SpiceDB embedded"`
	SpiceDBToken           string `flag:"spicedb-token" usage:"preshared key of the remote SpiceDB" secret:"true"`
	SpiceDBTokenFile       string `flag:"spicedb-token-file" usage:"serve and sync: file holding the preshared key of the remote SpiceDB (instead of --spicedb-token), read again every few seconds and sent from the next call on"`
	SpiceDBInsecure        bool   `flag:"spicedb-insecure" usage:"dial the remote SpiceDB without TLS"`
	SpiceDBCACert          string `flag:"spicedb-ca-cert" usage:"PEM file of CAs to trust for the remote SpiceDB (default: system roots)"`
	SpiceDBDatastoreURL    string `flag:"spicedb-datastore-url" usage:"embedded only: Postgres URL for SpiceDB's own datastore; empty uses the memory datastore" secret:"url"`
	SpiceDBDatastoreEngine string `flag:"spicedb-datastore-engine" usage:"remote only: the datastore engine of the remote SpiceDB (postgres, cockroachdb, mysql, spanner, memory), whose revisions tell which consistency token is fresher"`

	SyncSlot          string        `flag:"sync-slot" usage:"name of the persistent replication slot of the sync (one active sync per slot)"`
	ReconcileInterval time.Duration `flag:"reconcile-interval" usage:"how often a running persistent sync compares all of SpiceDB with Postgres and repairs drift (0 disables)"`
	Reconcile         bool          `flag:"reconcile" usage:"sync only: run one reconcile, print what it repaired, and exit"`
	SyncPollInterval  time.Duration `flag:"sync-poll-interval" usage:"serve with a remote SpiceDB: how often to read the sync's newest checkpoint; reads are at least as fresh as it"`
	MaxStaleness      time.Duration `flag:"max-staleness" usage:"serve: when a change committed to the mirrored tables has not reached SpiceDB for longer than this, reads answer 503 and /readyz fails until the sync catches up (0 disables)"`
	ConsistencyWait   time.Duration `flag:"consistency-wait" usage:"serve: how long a read whose consistency token is a Postgres LSN waits for the sync to apply it before answering 503 (shorter than the 10s request timeout)"`

	Index               bool          `flag:"index" usage:"serve: answer checks, bulk checks and lists from an in-memory index that follows SpiceDB's Watch; false asks SpiceDB for every answer"`
	IndexWait           time.Duration `flag:"index-wait" usage:"serve: how long a read waits for the index to reach the revision it must reflect before SpiceDB answers it instead"`
	IndexVerifyFraction float64       `flag:"index-verify-fraction" usage:"serve: fraction (0 to 1) of index answers re-asked of SpiceDB at the same revision in the background; mismatches are counted in tenantgate_index_verifications_total and logged"`

	HTTPAddr    string `flag:"http-addr" usage:"address the REST gateway listens on"`
	MetricsAddr string `flag:"metrics-addr" usage:"address serving /metrics, /healthz and /readyz apart from the API. sync: empty means :9090; serve: empty serves /metrics on --http-addr, an address serves it there only"`

	OTLPEndpoint string `flag:"otlp-endpoint" usage:"serve: base URL of an OpenTelemetry OTLP/HTTP receiver (http://collector:4318) that traces are sent to; empty falls back to OTEL_EXPORTER_OTLP_ENDPOINT, and without either nothing is traced"`

	JWKSURL             string   `flag:"jwks-url" usage:"URL of the JSON Web Key Set that signs user tokens"`
	JWKSFile            string   `flag:"jwks-file" usage:"file holding the JSON Web Key Set (instead of --jwks-url)"`
	Issuer              string   `flag:"issuer" usage:"required iss claim of user tokens"`
	Audience            string   `flag:"audience" usage:"required aud claim (or Cognito client_id) of user tokens"`
	SubjectClaim        string   `flag:"subject-claim" usage:"claim holding the user ID"`
	TokenUse            string   `flag:"token-use" usage:"accept only user tokens whose token_use claim is this: id or access (Cognito); empty accepts either"`
	TokenType           string   `flag:"token-type" usage:"accept only user tokens whose JOSE header typ is this media type, e.g. at+jwt (RFC 9068); empty does not check"`
	GroupsClaim         string   `flag:"groups-claim" usage:"claim of user tokens that holds the caller's groups, for --platform-role: cognito:groups (Cognito), groups (Okta, Entra ID), roles; a JSON array of strings or one space-separated string"`
	PlatformRoles       []string `flag:"platform-role" usage:"GROUP=ROLE: a caller whose token's --groups-claim holds GROUP holds ROLE (owner, admin, editor or viewer) on every company; repeat the flag or separate with commas. Only owner grants manage_owners"`
	Routes              string   `flag:"routes" usage:"serve: YAML file mapping the method and path of requests to the API behind a reverse proxy to a permission and a company; serves /v1/forward-auth (deploy/routes.example.yaml)"`
	MaxCompaniesPerUser int      `flag:"max-companies-per-user" usage:"serve: a user who owns this many companies directly may create no more through the API (409); 0: no bound"`
	MaxChildren         int      `flag:"max-children" usage:"serve: the most companies directly below one company that creates and moves through the API may make (409); 0: no bound"`
	MaxTreeSize         int      `flag:"max-tree-size" usage:"serve: the most companies one tree (a root and everything below it) may hold after a create or a move through the API (409); 0: no bound"`
	MembershipConsent   string   `flag:"membership-consent" usage:"serve: none, or required: a membership granted through the API to another user starts pending and grants nothing until that user accepts it (POST /v1/companies/{id}/members/{me}/accept) or declines it"`
	RateLimitUser       float64  `flag:"rate-limit-user" usage:"serve: requests a second each user may make (bursts of twice as many); beyond it 429 with Retry-After. 0: no limit"`
	RateLimitService    float64  `flag:"rate-limit-service" usage:"serve: requests a second the service token may make (bursts of twice as many). 0: no limit"`
	RateLimitAddress    float64  `flag:"rate-limit-address" usage:"serve: requests a second each client address may make before its token is verified (an IPv6 address counts by its /64). Behind a proxy every request comes from the proxy's address. 0: no limit"`
	MaxInFlight         int      `flag:"max-in-flight" usage:"serve: API requests served at once; beyond it a request is answered 503 with Retry-After at once instead of queued. 0: no bound"`
	ExternalURL         string   `flag:"external-url" usage:"serve: the gateway's URL as its clients reach it (behind a proxy, the proxy's), named as the policy decision point by /.well-known/authzen-configuration; empty names each request's own URL"`
	ServiceToken        string   `flag:"service-token" usage:"bearer token of trusted backends that may check on behalf of a user" secret:"true"`
	ServiceTokenFile    string   `flag:"service-token-file" usage:"serve: file holding the service token (instead of --service-token), read again every few seconds; the new token replaces the old at once"`

	Console             bool   `flag:"console" usage:"serve: serve the web console at /console/, where users sign in with their own token and see their companies, permissions and members (docs/console.md)"`
	ConsoleOIDCClientID string `flag:"console-oidc-client-id" usage:"serve: OAuth client ID of the console at the --issuer's identity provider (a public client using the authorization code flow with PKCE, redirect URI <external URL>/console/); the endpoints are read from the issuer's /.well-known/openid-configuration at start. Empty: users sign in by pasting a token"`

	GatewayURL        string `flag:"gateway-url" usage:"explain only: URL of the running tenantgate serve to ask (with --service-token)"`
	ExplainUser       string `flag:"user" usage:"explain only: the user whose access is explained"`
	ExplainCompany    string `flag:"company" usage:"explain only: the company"`
	ExplainPermission string `flag:"permission" usage:"explain only: the permission (read, update, create, delete, manage_members, manage_owners)"`
	Output            string `flag:"output" usage:"explain only: text or json"`

	JSON    bool `flag:"json" usage:"doctor only: print the checks as JSON instead of text"`
	Metrics bool `flag:"metrics" usage:"doctor only: print the replication slot's gauges (retained WAL, active, wal_status) in the Prometheus text format and exit, for a textfile collector or cron job when no sync runs"`

	LogLevel        string        `flag:"log-level" usage:"debug, info, warn or error"`
	LogFormat       string        `flag:"log-format" usage:"text or json"`
	ShutdownTimeout time.Duration `flag:"shutdown-timeout" usage:"how long a stopping server waits for requests in flight"`
	StartupTimeout  time.Duration `flag:"startup-timeout" usage:"serve and sync: how long to retry, with jittered backoff, a dependency that does not answer at start (SpiceDB, Postgres, the --jwks-url key set) before exiting; /healthz answers and /readyz fails meanwhile. A configuration error exits at once. 0: no retries"`

	BenchSystems       string        `flag:"bench-systems" usage:"bench only: comma-separated systems to compare: floor, sql, spicedb, remote, embedded, embedded-pg"`
	BenchCompanies     int           `flag:"bench-companies" usage:"bench only: companies of the generated data set"`
	BenchDepth         int           `flag:"bench-depth" usage:"bench only: how deep a company tree may be (a root and its subsidiaries)"`
	BenchUsers         int           `flag:"bench-users" usage:"bench only: users of the generated data set"`
	BenchMemberships   int           `flag:"bench-memberships" usage:"bench only: memberships of the generated data set, about 10% of them inactive or pending"`
	BenchListSizes     string        `flag:"bench-list-sizes" usage:"bench only: comma-separated company counts; one user sees each, and their whole list is timed"`
	BenchSeed          int           `flag:"bench-seed" usage:"bench only: seed of the generated data set and checks"`
	BenchChecks        int           `flag:"bench-checks" usage:"bench only: single checks each system answers (about half allowed); bulk checks ask as many"`
	BenchCheckUsers    int           `flag:"bench-check-users" usage:"bench only: distinct users the checks are about, each with one token (keep it under the gateway's token cache of 10000)"`
	BenchClients       int           `flag:"bench-clients" usage:"bench only: concurrent clients"`
	BenchBulkSize      int           `flag:"bench-bulk-size" usage:"bench only: checks per bulk call"`
	BenchListRepeats   int           `flag:"bench-list-repeats" usage:"bench only: how often each list is read, timed"`
	BenchDuration      time.Duration `flag:"bench-duration" usage:"bench only: longest each timed measurement of a system (its checks, its bulk checks, its lists of one size) runs; a system too slow to finish answers fewer (0: no limit)"`
	BenchLagRate       int           `flag:"bench-lag-rate" usage:"bench only: changes per second committed for the commit-to-visible lag of every gateway with its index on (0 skips it)"`
	BenchLagDuration   time.Duration `flag:"bench-lag-duration" usage:"bench only: how long the lag run commits changes (0 skips it)"`
	BenchIndexSizes    string        `flag:"bench-index-sizes" usage:"bench only: comma-separated membership counts at which the index's memory and build time are measured in the bench process (empty skips it)"`
	BenchChart         string        `flag:"bench-chart" usage:"bench only: path of the SVG chart to write"`
	BenchLogDir        string        `flag:"bench-log-dir" usage:"bench only: directory for the logs of every process started (default: a new temporary one, kept)"`
	BenchSpiceDBBin    string        `flag:"bench-spicedb-bin" usage:"bench only: the spicedb binary for the spicedb and remote systems (go build -o bin/spicedb github.com/authzed/spicedb/cmd/spicedb)"`
	BenchTenantgateBin string        `flag:"bench-tenantgate-bin" usage:"bench only: the tenantgate binary run as floor, serve and sync (default: this one)"`

	// Listener, when set, is used instead of listening on HTTPAddr (tests
	// and the demo bind first so they know the port).
	Listener net.Listener `flag:"-"`

	// ConsoleDemo, with a DemoSignIn, makes the console offer one-click
	// sign-in as sample users: the demo's, whose tokens it prints anyway.
	ConsoleDemo console.Config `flag:"-"`

	// secrets are the secret files read at start (withSecretFiles).
	secrets *secretFiles
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		SpiceDBDatastoreEngine: spicedb.DefaultDatastoreEngine,
		SyncSlot:               "tenantgate",
		ReconcileInterval:      6 * time.Hour,
		SyncPollInterval:       100 * time.Millisecond,
		ConsistencyWait:        5 * time.Second,
		Index:                  true,
		Console:                true,
		IndexWait:              250 * time.Millisecond,
		MaxStaleness:           30 * time.Second,
		HTTPAddr:               ":8080",
		MembershipConsent:      string(authz.ConsentNone),
		MaxCompaniesPerUser:    1000,
		MaxChildren:            10000,
		MaxTreeSize:            100000,
		RateLimitUser:          100,
		MaxInFlight:            1024,
		GatewayURL:             "http://localhost:8080",
		Output:                 "text",
		SubjectClaim:           "sub",
		LogLevel:               "info",
		LogFormat:              "text",
		ShutdownTimeout:        15 * time.Second,
		StartupTimeout:         DefaultStartupTimeout,
		BenchSystems:           "floor,sql,spicedb,remote,embedded,embedded-pg",
		BenchCompanies:         5000,
		BenchDepth:             6,
		BenchUsers:             20000,
		BenchMemberships:       60000,
		BenchListSizes:         "10,100,2000",
		BenchSeed:              1,
		BenchChecks:            20000,
		BenchCheckUsers:        1000,
		BenchClients:           8,
		BenchBulkSize:          100,
		BenchListRepeats:       20,
		BenchDuration:          30 * time.Second,
		BenchLagRate:           1000,
		BenchLagDuration:       10 * time.Second,
		BenchIndexSizes:        "100000,1000000",
		BenchChart:             "tenantgate-bench.svg",
		BenchSpiceDBBin:        "spicedb",
	}
}

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "TENANTGATE_"

// EnvName is the environment variable read for flag name.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ApplyEnv sets every flag not given on the command line from its
// environment variable, and --database-url from DATABASE_URL as a last
// resort.
func ApplyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		v, ok := lookup(EnvName(f.Name))
		if !ok && f.Name == "database-url" {
			v, ok = lookup("DATABASE_URL")
		}
		if ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// Validate checks what every command needs; commands check their own extras.
func (c Config) Validate() error {
	var errs []error
	if c.SpiceDBEndpoint != "" && c.SpiceDBDatastoreURL != "" {
		errs = append(errs, errors.New("--spicedb-datastore-url is for embedded SpiceDB; it cannot be combined with --spicedb-endpoint"))
	}
	if c.SpiceDBEndpoint == "" && (c.SpiceDBToken != "" || c.SpiceDBTokenFile != "" || c.SpiceDBInsecure || c.SpiceDBCACert != "") {
		errs = append(errs, errors.New("--spicedb-token, --spicedb-token-file, --spicedb-insecure and --spicedb-ca-cert need --spicedb-endpoint"))
	}
	if !slices.Contains(spicedb.DatastoreEngines(), c.SpiceDBDatastoreEngine) {
		errs = append(errs, fmt.Errorf("--spicedb-datastore-engine %q: want one of %s", c.SpiceDBDatastoreEngine, strings.Join(spicedb.DatastoreEngines(), ", ")))
	}
	if c.JWKSURL != "" && c.JWKSFile != "" {
		errs = append(errs, errors.New("give --jwks-url or --jwks-file, not both"))
	}
	for _, f := range []struct{ flag, value, file string }{
		{"database-url", c.DatabaseURL, c.DatabaseURLFile},
		{"spicedb-token", c.SpiceDBToken, c.SpiceDBTokenFile},
		{"service-token", c.ServiceToken, c.ServiceTokenFile},
	} {
		if f.value != "" && f.file != "" {
			errs = append(errs, fmt.Errorf("give --%s or --%s-file, not both", f.flag, f.flag))
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.ReconcileInterval < 0 {
		errs = append(errs, errors.New("--reconcile-interval must not be negative"))
	}
	if c.SyncPollInterval <= 0 {
		errs = append(errs, errors.New("--sync-poll-interval must be positive"))
	}
	if c.MaxStaleness < 0 {
		errs = append(errs, errors.New("--max-staleness must not be negative"))
	}
	if c.ConsistencyWait <= 0 {
		errs = append(errs, errors.New("--consistency-wait must be positive"))
	}
	if c.IndexWait < 0 {
		errs = append(errs, errors.New("--index-wait must not be negative"))
	}
	if !(c.IndexVerifyFraction >= 0 && c.IndexVerifyFraction <= 1) {
		errs = append(errs, fmt.Errorf("--index-verify-fraction %v: want a number from 0 to 1", c.IndexVerifyFraction))
	}
	if _, err := authz.ParsePlatformRoles(c.PlatformRoles); err != nil {
		errs = append(errs, fmt.Errorf("--platform-role: %w", err))
	}
	if len(c.PlatformRoles) > 0 && c.GroupsClaim == "" {
		errs = append(errs, errors.New("--platform-role needs --groups-claim, the claim the groups are read from"))
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--rate-limit-user", c.RateLimitUser}, {"--rate-limit-service", c.RateLimitService}, {"--rate-limit-address", c.RateLimitAddress}} {
		if !(r.v >= 0) || math.IsInf(r.v, 0) {
			errs = append(errs, fmt.Errorf("%s %v: want 0 (no limit) or more requests a second", r.flag, r.v))
		}
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, errors.New("--max-in-flight must not be negative"))
	}
	if c.MaxCompaniesPerUser < 0 || c.MaxChildren < 0 || c.MaxTreeSize < 0 {
		errs = append(errs, errors.New("--max-companies-per-user, --max-children and --max-tree-size must not be negative"))
	}
	if _, err := authz.ParseConsent(c.MembershipConsent); err != nil {
		errs = append(errs, fmt.Errorf("--membership-consent: %w", err))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	if c.StartupTimeout < 0 {
		errs = append(errs, errors.New("--startup-timeout must not be negative"))
	}
	if c.ConsoleOIDCClientID != "" && !c.Console {
		errs = append(errs, errors.New("--console-oidc-client-id needs --console"))
	}
	errs = append(errs, c.validateOperatorInputs()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	return nil
}

// validateOperatorInputs checks names, addresses and URLs an operator
// types, so that a typo is reported at start with the flag's name instead
// of surfacing later as a refused slot, a failed listen or a dial retried
// for ever.
func (c Config) validateOperatorInputs() []error {
	var errs []error
	if err := mirror.ValidateSlotName(c.SyncSlot); err != nil {
		errs = append(errs, fmt.Errorf("--sync-slot: %w", err))
	}
	for _, a := range []struct{ flag, addr string }{
		{"--http-addr", c.HTTPAddr}, {"--metrics-addr", c.MetricsAddr},
	} {
		if err := validateListenAddr(a.addr); a.addr != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", a.flag, a.addr, err))
		}
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("--http-addr must not be empty"))
	}
	if c.SpiceDBEndpoint != "" {
		if err := validateDialAddr(c.SpiceDBEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("--spicedb-endpoint %q: %w", c.SpiceDBEndpoint, err))
		}
	}
	if err := c.tracingConfig().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--otlp-endpoint %q: %w", c.OTLPEndpoint, err))
	}
	return errs
}

// validateListenAddr accepts what net.Listen("tcp", addr) does: an optional
// host and a port number, ":0" included.
func validateListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("the port must be a number from 0 to 65535")
	}
	return nil
}

// validateDialAddr accepts a host and a port number to dial.
func validateDialAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return errors.New("want host:port, without a scheme")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("the port must be a number from 1 to 65535")
	}
	return nil
}

func (c Config) requireDatabase() error {
	if c.DatabaseURL == "" {
		return fmt.Errorf("config: %w: --database-url (or %s, or DATABASE_URL) is required", authz.ErrInvalid, EnvName("database-url"))
	}
	return nil
}

func (c Config) requireIdentity() error {
	var errs []error
	if c.JWKSURL == "" && c.JWKSFile == "" {
		errs = append(errs, errors.New("--jwks-url or --jwks-file is required"))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("--issuer is required"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("--audience is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w: %w", authz.ErrInvalid, err)
	}
	// The rest of what the verifier will refuse (an http key set off
	// loopback, an unknown --token-use), before any backend is reached.
	return c.identityConfig(nil).Validate()
}

// LogValue shows the configuration with secrets redacted, so it can be
// logged at start.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("database_url_file", c.DatabaseURLFile),
		slog.String("spicedb_endpoint", c.SpiceDBEndpoint),
		slog.String("spicedb_token", redact(c.SpiceDBToken)),
		slog.String("spicedb_token_file", c.SpiceDBTokenFile),
		slog.Bool("spicedb_insecure", c.SpiceDBInsecure),
		slog.String("spicedb_datastore_url", redactURL(c.SpiceDBDatastoreURL)),
		slog.String("spicedb_datastore_engine", c.SpiceDBDatastoreEngine),
		slog.Bool("index", c.Index),
		slog.Duration("index_wait", c.IndexWait),
		slog.Float64("index_verify_fraction", c.IndexVerifyFraction),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("otlp_endpoint", redactURL(c.OTLPEndpoint)),
		slog.String("jwks_url", c.JWKSURL),
		slog.String("jwks_file", c.JWKSFile),
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.String("subject_claim", c.SubjectClaim),
		slog.String("token_use", c.TokenUse),
		slog.String("token_type", c.TokenType),
		slog.String("groups_claim", c.GroupsClaim),
		slog.Any("platform_roles", c.PlatformRoles),
		slog.String("external_url", c.ExternalURL),
		slog.String("routes", c.Routes),
		slog.Float64("rate_limit_user", c.RateLimitUser),
		slog.Float64("rate_limit_service", c.RateLimitService),
		slog.Float64("rate_limit_address", c.RateLimitAddress),
		slog.Int("max_in_flight", c.MaxInFlight),
		slog.String("membership_consent", c.MembershipConsent),
		slog.Int("max_companies_per_user", c.MaxCompaniesPerUser),
		slog.Int("max_children", c.MaxChildren),
		slog.Int("max_tree_size", c.MaxTreeSize),
		slog.String("service_token", redact(c.ServiceToken)),
		slog.String("service_token_file", c.ServiceTokenFile),
		slog.Bool("console", c.Console),
		slog.String("console_oidc_client_id", c.ConsoleOIDCClientID),
		slog.Duration("startup_timeout", c.StartupTimeout),
	)
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

// redactURL hides the password of a connection URL, and all of a string that
// does not parse as one (it may be a key=value DSN with a password in it).
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "REDACTED"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger builds the process logger the configuration asks for.
func (c Config) NewLogger() *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
