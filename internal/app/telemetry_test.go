package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/telemetry/telemetrytest"
	"github.com/tenantgate/tenantgate/internal/testutil"
	"github.com/tenantgate/tenantgate/internal/testutil/servetest"
)

// traceSeed is one member of one company.
var traceSeed = []string{
	`insert into companies (id, name) values ('acme', 'ACME')`,
	`insert into company_memberships (user_id, company_id, role) values ('alice', 'acme', 'viewer')`,
}

// exportQuickly makes every exporter of this test, tenantgate's and a
// SpiceDB process's (which inherits the environment), send its batch of
// spans within 20 ms instead of 5 s.
func exportQuickly(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
}

// TestOneTraceCrossesGatewaySpiceDBAndPostgres: a request that carries a
// traceparent is one trace from the gateway's span for its route, through
// its call to SpiceDB, to its Postgres query; with a remote SpiceDB that
// exports its own spans, SpiceDB's span of that call is in the same trace,
// a child of the gateway's call: the trace context crossed gRPC. No span
// carries the bearer token.
func TestOneTraceCrossesGatewaySpiceDBAndPostgres(t *testing.T) {
	exportQuickly(t)
	for _, backend := range []struct {
		name  string
		start func(t *testing.T, rcv *telemetrytest.Receiver) *stack
	}{
		{"embedded", func(t *testing.T, rcv *telemetrytest.Receiver) *stack {
			return startEmbeddedStackWith(t, func(cfg *app.Config) {
				cfg.OTLPEndpoint = rcv.URL()
				cfg.Index = false // every list asks SpiceDB
			}, traceSeed...)
		}},
		{"remote", startTracedRemoteStack},
	} {
		t.Run(backend.name, func(t *testing.T) {
			rcv := telemetrytest.NewReceiver(t)
			s := backend.start(t, rcv)
			token := s.token("alice")
			testutil.Eventually(t, time.Minute, func() error {
				if ids := s.listAllPages(t, token, "read", 10); !slices.Equal(ids, []string{"acme"}) {
					return fmt.Errorf("alice reads %v, want acme once the sync has carried the seed over", ids)
				}
				return nil
			})

			traceID, callerSpan := randomHex(t, 16), randomHex(t, 8)
			a, err := s.send("GET", "/v1/companies?permission=read", token, nil,
				http.Header{"Traceparent": {"00-" + traceID + "-" + callerSpan + "-01"}})
			if err != nil || a.status != http.StatusOK {
				t.Fatalf("list: %d %s %v", a.status, a.body, err)
			}
			wantSpiceDB := backend.name == "remote"
			var spans []telemetrytest.Span
			testutil.Eventually(t, time.Minute, func() error {
				spans = spansOf(rcv.Spans(), traceID)
				for _, want := range []struct{ service, name string }{
					{"tenantgate", "GET /v1/companies"},
					{"tenantgate", "authzed.api.v1.PermissionsService/LookupResources"},
					{"tenantgate", "query SELECT"},
				} {
					if findSpan(spans, want.service, want.name) == nil {
						return fmt.Errorf("no span %q of %s in trace %s: %v", want.name, want.service, traceID, spans)
					}
				}
				if wantSpiceDB && findSpan(spans, "spicedb", "") == nil {
					return fmt.Errorf("no span of SpiceDB in trace %s: %v", traceID, spans)
				}
				return nil
			})
			if root := findSpan(spans, "tenantgate", "GET /v1/companies"); root.ParentSpanID != callerSpan {
				t.Errorf("the route's span has parent %s, want the caller's %s", root.ParentSpanID, callerSpan)
			}
			if wantSpiceDB {
				call := findSpan(spans, "tenantgate", "authzed.api.v1.PermissionsService/LookupResources")
				if !slices.ContainsFunc(spans, func(sp telemetrytest.Span) bool {
					return sp.Service == "spicedb" && sp.ParentSpanID == call.SpanID
				}) {
					t.Errorf("no span of SpiceDB is a child of the gateway's call %s: %v", call.SpanID, spans)
				}
			}
			assertNoSecretInSpans(t, rcv.Spans(), token)
		})
	}
}

// startTracedRemoteStack is a stack on a `spicedb serve` process that
// exports its spans to rcv, with the sync and the gateway in this process
// (the gateway with the index off, so every list asks SpiceDB).
func startTracedRemoteStack(t *testing.T, rcv *telemetrytest.Receiver) *stack {
	t.Helper()
	// SpiceDB reads its flags from SPICEDB_* variables; sampling follows
	// the caller's traceparent (parent-based), whatever its ratio.
	t.Setenv("SPICEDB_OTEL_PROVIDER", "otlphttp")
	t.Setenv("SPICEDB_OTEL_ENDPOINT", rcv.HostPort())
	t.Setenv("SPICEDB_OTEL_INSECURE", "true")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dbURL := testutil.NewTestDatabase(t)
	// Runs once the sync stopped: its persistent slot would keep the
	// database from being dropped.
	t.Cleanup(func() { dropSlots(t, dbURL) })
	s, jwksFile := newStack(t, dbURL, traceSeed)
	sdb, err := testutil.StartSpiceDB(ctx, testutil.SpiceDBOptions{DatastoreURL: testutil.NewEmptyTestDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close(context.Background()) })
	migrateSpiceDB(t, sdb)
	remote := func(cfg *app.Config) {
		cfg.DatabaseURL = dbURL
		cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = sdb.Endpoint(), sdb.Token(), true
	}
	syncCfg := app.Default()
	remote(&syncCfg)
	syncCfg.MetricsAddr = freeAddr(t)
	runInProcess(t, func(ctx context.Context) error {
		return app.Sync(ctx, syncCfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	})
	cfg := app.Default()
	remote(&cfg)
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = s.issuer.Issuer(), s.issuer.Audience()
	cfg.OTLPEndpoint = rcv.URL()
	cfg.Index = false
	s.baseURLs = []string{servetest.Start(t, cfg)}
	return s
}

// runInProcess runs fn until the test ends, then cancels it and waits for
// it; an error it returns fails the test.
func runInProcess(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("returned %v", err)
		}
	})
}

// TestLogsNeverCarryTokens: whatever bearer token a request carries (a
// valid user token, a forged one, garbage, the service token, a wrong
// service token) and wherever (the Authorization header, the query), no
// log line at debug level and no span contains it or its signature, while
// every response carries an X-Request-ID that its log lines carry as
// request_id.
func TestLogsNeverCarryTokens(t *testing.T) {
	exportQuickly(t)
	rcv := telemetrytest.NewReceiver(t)
	dbURL := testutil.NewTestDatabase(t)
	s, jwksFile := newStack(t, dbURL, traceSeed)
	cfg := app.Default()
	cfg.DatabaseURL = dbURL
	cfg.JWKSFile = jwksFile
	cfg.Issuer, cfg.Audience = s.issuer.Issuer(), s.issuer.Audience()
	cfg.ServiceToken = serviceToken
	cfg.OTLPEndpoint = rcv.URL()
	logs := &lockedBuffer{}
	s.baseURLs = []string{serveLogged(t, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}

	valid := s.token("alice")
	forged := valid[:strings.LastIndexByte(valid, '.')+1] + strings.Repeat("A", 86)
	secrets := []string{valid, forged, serviceToken, "garbage-bearer-0123456789abcdef", "wrong-service-token-0123456789"}
	check := []byte(`{"permission":"read","company":"acme"}`)
	onBehalf := []byte(`{"permission":"read","company":"acme","subject":"alice"}`)
	requests := []struct {
		name, method, path string
		bearer             string
		body               []byte
		header             http.Header
		want               int
	}{
		{"valid user token", "POST", "/v1/check", valid, check, nil, http.StatusOK},
		{"valid user token, list", "GET", "/v1/companies?permission=read", valid, nil, nil, http.StatusOK},
		{"forged signature", "POST", "/v1/check", forged, check, nil, http.StatusUnauthorized},
		{"garbage", "POST", "/v1/check", secrets[3], check, nil, http.StatusUnauthorized},
		{"service token", "POST", "/v1/check", serviceToken, onBehalf, nil, http.StatusOK},
		{"service token where it may not", "GET", "/v1/companies?permission=read", serviceToken, nil, nil, http.StatusForbidden},
		{"wrong service token", "POST", "/v1/check", secrets[4], onBehalf, nil, http.StatusUnauthorized},
		{"token in the query", "GET", "/v1/companies?permission=read&access_token=" + valid, valid, nil, nil, http.StatusBadRequest},
		{"not a bearer scheme", "POST", "/v1/check", "", check, http.Header{"Authorization": {"Basic " + valid}}, http.StatusUnauthorized},
	}
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			a, err := s.send(r.method, r.path, r.bearer, r.body, r.header)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != r.want {
				t.Errorf("status %d, want %d: %s", a.status, r.want, a.body)
			}
			id := a.header.Get("X-Request-Id")
			if id == "" {
				t.Fatal("no X-Request-ID")
			}
			testutil.Eventually(t, 10*time.Second, func() error {
				if !logs.hasLineWith("request_id", id) {
					return fmt.Errorf("no log line with request_id %s", id)
				}
				return nil
			})
		})
	}
	for _, line := range logs.lines(t) {
		if line["msg"] == "http request" && line["request_id"] == nil {
			t.Errorf("an access log line without request_id: %v", line)
		}
	}
	logged := logs.String()
	for _, secret := range secrets {
		signature := secret[strings.LastIndexByte(secret, '.')+1:]
		if strings.Contains(logged, secret) || strings.Contains(logged, signature) {
			t.Errorf("the log carries the token %.12s...:\n%s", secret, logged)
		}
	}
	// The spans of the requests above are exported within a batch delay.
	testutil.Eventually(t, time.Minute, func() error {
		if len(rcv.Spans()) < len(requests) {
			return fmt.Errorf("%d spans received, want at least %d", len(rcv.Spans()), len(requests))
		}
		return nil
	})
	assertNoSecretInSpans(t, rcv.Spans(), secrets...)
}

// serveLogged runs `tenantgate serve` with cfg in this process, logging
// to logger, on a fresh loopback port, and returns its base URL once
// /readyz answers 200; it stops when the test ends.
func serveLogged(t *testing.T, cfg app.Config, logger *slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	base := "http://" + ln.Addr().String()
	runInProcess(t, func(ctx context.Context) error { return app.Serve(ctx, cfg, logger) })
	hc := &http.Client{Timeout: 5 * time.Second}
	testutil.Eventually(t, 2*time.Minute, func() error {
		resp, err := hc.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errNotYet
		}
		return nil
	})
	return base
}

// lockedBuffer is a log destination that tests read while serve writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the log, one JSON object a line.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

func (b *lockedBuffer) hasLineWith(key, value string) bool {
	return strings.Contains(b.String(), fmt.Sprintf("%q:%q", key, value))
}

func randomHex(t *testing.T, bytes int) string {
	t.Helper()
	b := make([]byte, bytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// spansOf are the spans of trace traceID.
func spansOf(spans []telemetrytest.Span, traceID string) []telemetrytest.Span {
	return slices.DeleteFunc(spans, func(s telemetrytest.Span) bool { return s.TraceID != traceID })
}

// findSpan is the first span of service named name (any name when empty),
// or nil.
func findSpan(spans []telemetrytest.Span, service, name string) *telemetrytest.Span {
	i := slices.IndexFunc(spans, func(s telemetrytest.Span) bool {
		return s.Service == service && (name == "" || s.Name == name)
	})
	if i < 0 {
		return nil
	}
	return &spans[i]
}

func assertNoSecretInSpans(t *testing.T, spans []telemetrytest.Span, secrets ...string) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no spans to look into")
	}
	for _, s := range spans {
		for k, v := range s.Attributes {
			for _, secret := range secrets {
				if strings.Contains(v, secret) || strings.Contains(s.Name, secret) {
					t.Errorf("span %v: attribute %s carries the token %.12s...", s, k, secret)
				}
			}
		}
	}
}
