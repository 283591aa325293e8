package monitoringtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// targetLabels are the labels Prometheus attaches to every scraped series
// itself; a query may filter and group on them whatever the metric.
var targetLabels = []string{"job", "instance"}

// series is what a PromQL selector can name: a metric, or one of the
// series a histogram or summary is exposed as.
type series struct {
	metric string
	labels map[string]bool
	// values holds, by label, every value the label takes, for the labels
	// whose values the code creates at start; other labels are open.
	values map[string]map[string]bool
}

// catalog is every series the code exports, by name.
type catalog map[string]series

// newCatalog expands metrics into the series names a query can select: a
// histogram is its _bucket (with le), _sum and _count, never its bare name.
func newCatalog(metrics map[string]metric, values map[string]map[string]map[string]bool) catalog {
	cat := catalog{}
	add := func(name, of string, ls []string, extra ...string) {
		s := series{metric: of, labels: map[string]bool{}, values: values[of]}
		for _, l := range slices.Concat(ls, targetLabels, extra) {
			s.labels[l] = true
		}
		cat[name] = s
	}
	for name, m := range metrics {
		switch m.kind {
		case histogram:
			add(name+"_bucket", name, m.labels, "le")
			add(name+"_sum", name, m.labels)
			add(name+"_count", name, m.labels)
		case summary:
			add(name, name, m.labels, "quantile")
			add(name+"_sum", name, m.labels)
			add(name+"_count", name, m.labels)
		default:
			add(name, name, m.labels)
		}
	}
	return cat
}

// codeCatalog is the catalog of what the code exports, built once: the
// source scan for names, kinds and labels, the real registries for the
// values created at start.
func codeCatalog(t *testing.T) catalog {
	t.Helper()
	metrics := exportedMetrics(t)
	catalogOnce.Do(func() {
		_, values := registries(t)
		builtCatalog = newCatalog(metrics, values)
	})
	if builtCatalog == nil {
		t.Fatal("the catalog could not be built (see the first test that tried)")
	}
	return builtCatalog
}

var (
	catalogOnce  sync.Once
	builtCatalog catalog
)

// checkExpr parses expr as PromQL and reports every metric, label and
// label value it names that the catalog lacks.
func checkExpr(expr string, cat catalog) []error {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return []error{fmt.Errorf("%q: %w", expr, err)}
	}
	var errs []error
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			errs = append(errs, cat.checkSelector(n)...)
		case *parser.AggregateExpr:
			errs = append(errs, cat.checkGrouping(n.Grouping, fmt.Sprintf("%s by/without", n.Op), n.Expr)...)
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil {
				errs = append(errs, cat.checkGrouping(slices.Concat(vm.MatchingLabels, vm.Include), "on/ignoring/group_*", n.LHS, n.RHS)...)
			}
		}
		return nil
	})
	return errs
}

func (cat catalog) checkSelector(vs *parser.VectorSelector) []error {
	if vs.Name == "" {
		return []error{fmt.Errorf("%s: name the metric: the check cannot follow a selector by __name__ matchers", vs)}
	}
	s, ok := cat[vs.Name]
	if !ok {
		hint := ""
		if _, isHistogram := cat[vs.Name+"_bucket"]; isHistogram {
			hint = " (it is a histogram: select its _bucket, _sum or _count)"
		}
		return []error{fmt.Errorf("%s: the code exports no metric of that name%s", vs.Name, hint)}
	}
	var errs []error
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			continue
		}
		if !s.labels[m.Name] {
			errs = append(errs, fmt.Errorf("%s: no label %q; it has %s", vs.Name, m.Name, sortedKeys(s.labels)))
			continue
		}
		if known := s.values[m.Name]; known != nil && m.Type == labels.MatchEqual && !known[m.Value] {
			errs = append(errs, fmt.Errorf("%s: %s=%q is never exported; the code creates %s", vs.Name, m.Name, m.Value, sortedKeys(known)))
		}
	}
	return errs
}

// checkGrouping reports the labels of a by, without, on, ignoring or
// group_* clause that none of the series under it carries: grouping by a
// label that does not exist silently folds every series into one.
func (cat catalog) checkGrouping(grouping []string, clause string, under ...parser.Node) []error {
	if len(grouping) == 0 {
		return nil
	}
	have := map[string]bool{}
	for _, n := range under {
		parser.Inspect(n, func(node parser.Node, _ []parser.Node) error {
			switch n := node.(type) {
			case *parser.VectorSelector:
				maps.Copy(have, cat[n.Name].labels)
			case *parser.Call:
				// These make a label of their own, named by a string argument.
				if (n.Func.Name == "label_replace" || n.Func.Name == "label_join") && len(n.Args) > 1 {
					if dst, ok := n.Args[1].(*parser.StringLiteral); ok {
						have[dst.Val] = true
					}
				}
			case *parser.AggregateExpr:
				if dst, ok := n.Param.(*parser.StringLiteral); ok && n.Op == parser.COUNT_VALUES {
					have[dst.Val] = true
				}
			}
			return nil
		})
	}
	var errs []error
	for _, l := range grouping {
		if !have[l] {
			errs = append(errs, fmt.Errorf("%s (%s): no series under it has the label %q", clause, strings.Join(grouping, ", "), l))
		}
	}
	return errs
}

func sortedKeys(m map[string]bool) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// TestCheckExprRefuses proves the check fails on what a typo or a renamed
// metric would leave in a file, and accepts the forms the files use.
func TestCheckExprRefuses(t *testing.T) {
	cat := codeCatalog(t)
	cases := []struct {
		name, expr string
		wantErr    string // empty: no error
	}{
		{"a counter's rate", `rate(tenantgate_http_requests_total{code="503"}[5m])`, ""},
		{"a histogram quantile", `histogram_quantile(0.99, sum by (route, le) (rate(tenantgate_http_request_duration_seconds_bucket[5m])))`, ""},
		{"target labels", `max by (instance, job) (tenantgate_sync_active)`, ""},
		{"a value the code creates", `tenantgate_check_decisions_total{decision="error"}`, ""},
		{"a made-up metric", `rate(tenantgate_made_up_total[5m]) > 0`, "tenantgate_made_up_total: the code exports no metric"},
		{"a made-up metric beside a real one", `tenantgate_sync_lag_seconds > on (instance) tenantgate_sync_lag_secs`, "tenantgate_sync_lag_secs"},
		{"a histogram's bare name", `tenantgate_http_request_duration_seconds > 1`, "select its _bucket"},
		{"buckets of a gauge", `tenantgate_sync_lag_seconds_bucket`, "tenantgate_sync_lag_seconds_bucket"},
		{"a label it lacks", `tenantgate_http_requests_total{status="503"}`, `no label "status"`},
		{"a value never exported", `tenantgate_check_decisions_total{decision="errors"}`, `decision="errors" is never exported`},
		{"grouping by a label nothing has", `sum by (tenant) (rate(tenantgate_http_requests_total[5m]))`, `no series under it has the label "tenant"`},
		{"matching on a label nothing has", `tenantgate_sync_active * on (pod) tenantgate_sync_lag_seconds`, `"pod"`},
		{"a label made by label_replace", `sum by (svc) (label_replace(tenantgate_sync_active, "svc", "$1", "job", "(.*)"))`, ""},
		{"not PromQL", `rate(tenantgate_http_requests_total[5m]`, "unclosed"},
		{"no metric name", `{__name__=~"tenantgate_.*"}`, "name the metric"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkExpr(tc.expr, cat)
			if tc.wantErr == "" {
				for _, err := range errs {
					t.Errorf("%s: %v", tc.expr, err)
				}
				return
			}
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.wantErr) }) {
				t.Errorf("%s: errors %v, want one containing %q", tc.expr, errs, tc.wantErr)
			}
		})
	}
}
