package monitoringtest

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
	"github.com/tenantgate/tenantgate/internal/index"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/spicedb"
)

// kind is a metric's type as the exposition format names it.
type kind string

const (
	counter   kind = "counter"
	gauge     kind = "gauge"
	histogram kind = "histogram"
	summary   kind = "summary"
	untyped   kind = "untyped"
)

// metric is one metric the code defines.
type metric struct {
	kind kind
	// labels are its variable label names, sorted.
	labels []string
	// where is the file and line that defines it, for messages.
	where string
}

// constructors are the functions of client_golang that define a metric
// from an Opts literal, with the kind they make and whether their second
// argument is the label names.
var constructors = map[string]struct {
	kind kind
	vec  bool
}{
	"NewCounter": {counter, false}, "NewCounterVec": {counter, true}, "NewCounterFunc": {counter, false},
	"NewGauge": {gauge, false}, "NewGaugeVec": {gauge, true}, "NewGaugeFunc": {gauge, false},
	"NewHistogram": {histogram, false}, "NewHistogramVec": {histogram, true},
	"NewSummary": {summary, false}, "NewSummaryVec": {summary, true},
	"NewUntypedFunc": {untyped, false},
}

// optsTypes are client_golang's option structs that carry a metric's name.
var optsTypes = map[string]bool{
	"Opts": true, "CounterOpts": true, "GaugeOpts": true, "HistogramOpts": true, "SummaryOpts": true, "UntypedOpts": true,
}

const clientGolang = "github.com/prometheus/client_golang/prometheus"

// scanMetrics reads every metric the module's Go sources (tests excluded)
// define. Reading the sources rather than a running process is what
// reaches every metric: the database-backed ones (the store's, the gauges
// that serve.go registers inline) cannot be built without Postgres. So
// nothing is missed silently, a definition the scan cannot read fully (a
// name or label list that is not a literal, an Opts built apart from its
// constructor, a prometheus.NewDesc) is an error, not a skip.
func scanMetrics(root string) (map[string]metric, []error) {
	out := map[string]metric{}
	var errs []error
	fset := token.NewFileSet()
	walkErr := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "node_modules" || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		errs = append(errs, scanFile(fset, root, f, out)...)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	return out, errs
}

// scanFile adds the metrics f defines to out.
func scanFile(fset *token.FileSet, root string, f *ast.File, out map[string]metric) []error {
	alias := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == clientGolang {
			alias = "prometheus"
			if imp.Name != nil {
				alias = imp.Name.Name
			}
		}
	}
	if alias == "" || alias == "_" || alias == "." {
		return nil
	}
	where := func(n ast.Node) string {
		p := fset.Position(n.Pos())
		rel, err := filepath.Rel(root, p.Filename)
		if err != nil {
			rel = p.Filename
		}
		return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), p.Line)
	}
	// fromPackage reports the name e selects from client_golang, if any.
	fromPackage := func(e ast.Expr) string {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return ""
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == alias {
			return sel.Sel.Name
		}
		return ""
	}
	var errs []error
	handled := map[*ast.CompositeLit]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		fn := fromPackage(call.Fun)
		if fn == "NewDesc" && len(call.Args) > 0 {
			errs = append(errs, fmt.Errorf("%s: prometheus.NewDesc: the scan cannot tell the kind of a metric defined by a Desc; teach scanFile how", where(call)))
			return true
		}
		c, ok := constructors[fn]
		if !ok || len(call.Args) == 0 {
			return true
		}
		lit, ok := call.Args[0].(*ast.CompositeLit)
		if !ok || !optsTypes[fromPackage(lit.Type)] {
			// An Opts variable: the literal it came from is reported below.
			return true
		}
		handled[lit] = true
		name, err := optsName(lit)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where(lit), err))
			return true
		}
		m := metric{kind: c.kind, where: where(lit)}
		if c.vec {
			if len(call.Args) < 2 {
				errs = append(errs, fmt.Errorf("%s: %s of %s without label names", where(call), fn, name))
				return true
			}
			labels, err := stringList(call.Args[1])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: label names of %s: %w", where(call), name, err))
				return true
			}
			slices.Sort(labels)
			m.labels = labels
		}
		if prev, ok := out[name]; ok && (prev.kind != m.kind || !slices.Equal(prev.labels, m.labels)) {
			errs = append(errs, fmt.Errorf("%s: %s is defined again, differently, at %s", m.where, name, prev.where))
			return true
		}
		out[name] = m
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok || handled[lit] || !optsTypes[fromPackage(lit.Type)] {
			return true
		}
		if name, err := optsName(lit); err != nil || name != "" {
			errs = append(errs, fmt.Errorf("%s: an Opts literal outside a prometheus.New* call: the scan cannot tell its kind and labels; define the metric inline", where(lit)))
		}
		return true
	})
	return errs
}

// optsName is the fully qualified name an Opts literal gives, as
// client_golang builds it from Namespace, Subsystem and Name.
func optsName(lit *ast.CompositeLit) (string, error) {
	parts := map[string]string{}
	for _, elt := range lit.Elts {
		kv, ok := elt.(*ast.KeyValueExpr)
		if !ok {
			return "", errors.New("an Opts literal without field names")
		}
		key, ok := kv.Key.(*ast.Ident)
		if !ok {
			continue
		}
		switch key.Name {
		case "Namespace", "Subsystem", "Name":
			s, err := stringLit(kv.Value)
			if err != nil {
				return "", fmt.Errorf("%s: %w", key.Name, err)
			}
			parts[key.Name] = s
		}
	}
	return prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"]), nil
}

func stringLit(e ast.Expr) (string, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", errors.New("not a string literal")
	}
	return strconv.Unquote(lit.Value)
}

func stringList(e ast.Expr) ([]string, error) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, errors.New("not a []string literal")
	}
	out := []string{}
	for _, elt := range lit.Elts {
		s, err := stringLit(elt)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// findModuleRoot is the directory holding go.mod above the working
// directory, where go test runs the tests: the package's own directory.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := findModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// scanned is scanMetrics of the module, once per test binary: the whole
// module is parsed, and most tests need it.
var scanned = sync.OnceValues(func() (map[string]metric, []error) {
	root, err := findModuleRoot()
	if err != nil {
		return nil, []error{err}
	}
	return scanMetrics(root)
})

// exportedMetrics is every metric the code defines; a scan error fails
// the test, since a partial list would let a file name a metric it lacks
// or reject one it has.
func exportedMetrics(t *testing.T) map[string]metric {
	t.Helper()
	metrics, errs := scanned()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return metrics
}

// realMetric is a metric as a registry the code built describes it.
type realMetric struct {
	kind   kind // empty when the collector does not tell
	labels []string
}

// registries builds the metrics of every part that needs no database
// (gateway, sync, slot waits, permission index, SpiceDB client) through their real
// constructors, and reports what they register, and the label values they
// create at start. Values matter because a query that filters on a value
// the code never produces ({decision="errors"}) is as broken as one that
// names a missing metric, and for these labels the code creates every
// value up front.
func registries(t *testing.T) (map[string]realMetric, map[string]map[string]map[string]bool) {
	t.Helper()
	rec := &recorder{Registry: prometheus.NewRegistry()}
	if _, err := mirror.New(mirror.Config{DatabaseURL: "postgres://unused.invalid/unused", Registry: rec}, nil); err != nil {
		t.Fatalf("mirror.New: %v", err)
	}
	if _, err := mirror.NewSlotWaits(nil, time.Second, rec); err != nil {
		t.Fatalf("mirror.NewSlotWaits: %v", err)
	}
	if _, err := index.NewAuthorizer(index.Config{}, nil, nil, nil, rec, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("index.NewAuthorizer: %v", err)
	}
	// Dialling is lazy: the client's metrics exist with no SpiceDB there.
	sdb, err := spicedb.Dial(spicedb.RemoteConfig{Endpoint: "unused.invalid:50051", Insecure: true})
	if err != nil {
		t.Fatalf("spicedb.Dial: %v", err)
	}
	t.Cleanup(func() { _ = sdb.Close() })
	rec.MustRegister(sdb)
	// The gateway takes a *prometheus.Registry, which cannot be wrapped:
	// what it registers is read back by gathering.
	greg := prometheus.NewRegistry()
	gw, err := gateway.New(gateway.Config{}, gateway.Deps{Authn: noAuthn{}, Authz: noAuthz{}, Companies: noCompanies{}, Registry: greg})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}

	values := map[string]map[string]map[string]bool{}
	for _, g := range []prometheus.Gatherer{rec.Registry, greg} {
		for _, mf := range gather(t, g) {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					byLabel := values[mf.GetName()]
					if byLabel == nil {
						byLabel = map[string]map[string]bool{}
						values[mf.GetName()] = byLabel
					}
					if byLabel[lp.GetName()] == nil {
						byLabel[lp.GetName()] = map[string]bool{}
					}
					byLabel[lp.GetName()][lp.GetValue()] = true
				}
			}
		}
	}

	out := map[string]realMetric{}
	for _, c := range rec.collectors {
		k := kindOf(c)
		for _, d := range describe(c) {
			name, labels, err := parseDesc(d)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = realMetric{kind: k, labels: labels}
		}
	}
	// One request makes the per-route series exist, so they gather.
	gw.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	for _, mf := range gather(t, greg) {
		var labels []string
		if ms := mf.GetMetric(); len(ms) > 0 {
			for _, lp := range ms[0].GetLabel() {
				labels = append(labels, lp.GetName())
			}
			slices.Sort(labels)
		}
		out[mf.GetName()] = realMetric{kind: kind(strings.ToLower(mf.GetType().String())), labels: labels}
	}
	return out, values
}

func gather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

// recorder is a Registerer that remembers the collectors registered.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func describe(c prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}

// kindOf tells a collector's kind from its type, or for a single metric
// from what it writes.
func kindOf(c prometheus.Collector) kind {
	switch c := c.(type) {
	case *prometheus.CounterVec:
		return counter
	case *prometheus.GaugeVec:
		return gauge
	case *prometheus.HistogramVec:
		return histogram
	case *prometheus.SummaryVec:
		return summary
	case prometheus.Metric:
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			return ""
		}
		switch {
		case m.Counter != nil:
			return counter
		case m.Gauge != nil:
			return gauge
		case m.Histogram != nil:
			return histogram
		case m.Summary != nil:
			return summary
		case m.Untyped != nil:
			return untyped
		}
	}
	return ""
}

// descPattern reads a Desc's String(), the only public view of its name
// and variable labels; client_golang is pinned in go.mod, and a changed
// format fails here loudly rather than passing.
var descPattern = regexp.MustCompile(`^Desc\{fqName: "([^"]*)", .*variableLabels: \{([^}]*)\}\}$`)

func parseDesc(d *prometheus.Desc) (string, []string, error) {
	m := descPattern.FindStringSubmatch(d.String())
	if m == nil {
		return "", nil, fmt.Errorf("cannot read %s: has client_golang changed Desc.String?", d)
	}
	var labels []string
	for l := range strings.SplitSeq(m[2], ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			labels = append(labels, l)
		}
	}
	slices.Sort(labels)
	return m[1], labels, nil
}

// The gateway's required collaborators; the registries test never asks
// them anything that matters.
type noAuthn struct{}

func (noAuthn) Authenticate(context.Context, string) (authz.Principal, error) {
	return authz.Principal{}, authz.ErrUnauthenticated
}

type noAuthz struct{}

func (noAuthz) Check(context.Context, authz.CheckRequest, authz.Consistency) (bool, string, error) {
	return false, "", authz.ErrUnavailable
}

func (noAuthz) CheckBulk(context.Context, []authz.CheckRequest, authz.Consistency) ([]bool, string, error) {
	return nil, "", authz.ErrUnavailable
}

func (noAuthz) LookupCompanies(context.Context, string, authz.Permission, authz.Consistency, int, string) ([]string, string, error) {
	return nil, "", authz.ErrUnavailable
}

type noCompanies struct{}

func (noCompanies) CompaniesByIDs(context.Context, []string) ([]authz.Company, error) {
	return nil, authz.ErrUnavailable
}

// TestScanFindsWhatRegistriesRegister ties the source scan to the code
// that runs: every metric the real constructors register is found by the
// scan with the same kind and labels. Without it a scanner bug (a missed
// constructor, a misread label list) would quietly shrink the list the
// files are checked against.
func TestScanFindsWhatRegistriesRegister(t *testing.T) {
	scannedMetrics := exportedMetrics(t)
	real, _ := registries(t)
	// The three parts built here register about twenty metrics; far fewer
	// means the recorder or the gathering stopped seeing them.
	if len(real) < 15 {
		t.Fatalf("the real registries hold %d metrics, want at least 15: %v", len(real), real)
	}
	for name, r := range real {
		s, ok := scannedMetrics[name]
		switch {
		case !ok:
			t.Errorf("%s is registered by the code but not found by the source scan", name)
		case r.kind != "" && r.kind != s.kind:
			t.Errorf("%s: registered as a %s, scanned as a %s (%s)", name, r.kind, s.kind, s.where)
		case !slices.Equal(r.labels, s.labels):
			t.Errorf("%s: registered with labels %v, scanned with %v (%s)", name, r.labels, s.labels, s.where)
		}
	}
}

// TestScanReadsDefinitions runs the scan on made-up sources: what it must
// read, and what it must refuse rather than skip.
func TestScanReadsDefinitions(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		want    map[string]metric
		wantErr string
	}{
		{
			name: "vector with labels, aliased import",
			src: `package p
import prom "github.com/prometheus/client_golang/prometheus"
var c = prom.NewCounterVec(prom.CounterOpts{Name: "tenantgate_x_total", Help: "h"}, []string{"b", "a"})`,
			want: map[string]metric{"tenantgate_x_total": {kind: counter, labels: []string{"a", "b"}}},
		},
		{
			name: "namespace and subsystem make the name",
			src: `package p
import "github.com/prometheus/client_golang/prometheus"
var h = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tenantgate", Subsystem: "y", Name: "seconds"})`,
			want: map[string]metric{"tenantgate_y_seconds": {kind: histogram}},
		},
		{
			name: "gauge func",
			src: `package p
import "github.com/prometheus/client_golang/prometheus"
var g = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tenantgate_z"}, func() float64 { return 0 })`,
			want: map[string]metric{"tenantgate_z": {kind: gauge}},
		},
		{
			name: "a name that is not a literal",
			src: `package p
import "github.com/prometheus/client_golang/prometheus"
const n = "tenantgate_n"
var g = prometheus.NewGauge(prometheus.GaugeOpts{Name: n})`,
			wantErr: "not a string literal",
		},
		{
			name: "labels that are not a literal",
			src: `package p
import "github.com/prometheus/client_golang/prometheus"
var l = []string{"a"}
var g = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tenantgate_g"}, l)`,
			wantErr: "not a []string literal",
		},
		{
			name: "opts apart from the constructor",
			src: `package p
import "github.com/prometheus/client_golang/prometheus"
var o = prometheus.CounterOpts{Name: "tenantgate_o_total"}
var c = prometheus.NewCounter(o)`,
			wantErr: "outside a prometheus.New* call",
		},
		{
			name: "a Desc",
			src: `package p
import "github.com/prometheus/client_golang/prometheus"
var d = prometheus.NewDesc("tenantgate_d", "h", nil, nil)`,
			wantErr: "NewDesc",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			got, errs := scanMetrics(dir)
			if tc.wantErr != "" {
				if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.wantErr) }) {
					t.Fatalf("errors %v, want one containing %q", errs, tc.wantErr)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			for _, m := range got {
				if m.where == "" {
					t.Errorf("a metric without its place: %+v", m)
				}
			}
			for name, want := range tc.want {
				g, ok := got[name]
				if !ok || g.kind != want.kind || !slices.Equal(g.labels, want.labels) {
					t.Errorf("%s = %+v (found %v), want %+v", name, g, ok, want)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("found %v, want %v", got, tc.want)
			}
		})
	}
}
