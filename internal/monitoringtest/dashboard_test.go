package monitoringtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = "deploy/monitoring/grafana-dashboard.json"

// datasourceInput is the input Grafana asks for when the dashboard is
// imported; every query must use it, so that the dashboard works whatever
// the Prometheus data source is called where it is imported.
const (
	datasourceInput = "DS_PROMETHEUS"
	datasourceUID   = "${" + datasourceInput + "}"
)

// The schema versions of the Grafana releases the dashboard is written for
// (10.x and 11.x); a dashboard from far outside them is migrated, or
// refused, on import.
const minSchemaVersion, maxSchemaVersion = 36, 41

// grafanaMacros stand in for the interval variables Grafana substitutes
// before a query reaches Prometheus, so the query can be parsed as
// Prometheus will see it. Any other variable is refused: the dashboard
// defines none.
var grafanaMacros = strings.NewReplacer(
	"${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__interval}", "1m", "$__interval", "1m",
	"${__range}", "1h", "$__range", "1h",
)

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardTarget struct {
	Expr       string         `json:"expr"`
	RefID      string         `json:"refId"`
	Datasource *datasourceRef `json:"datasource"`
}

type dashboardPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	Targets    []dashboardTarget        `json:"targets"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	// Panels are the panels of a collapsed row.
	Panels []dashboardPanel `json:"panels"`
}

type dashboardInput struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type dashboard struct {
	Inputs        []dashboardInput `json:"__inputs"`
	SchemaVersion int              `json:"schemaVersion"`
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	Panels        []dashboardPanel `json:"panels"`
}

// allPanels is every panel, those inside collapsed rows included.
func (d dashboard) allPanels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// queries is every PromQL query of the dashboard as Prometheus receives
// it, by the panel and target it comes from.
func (d dashboard) queries() (map[string]string, []error) {
	out := map[string]string{}
	var errs []error
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %d %q, target %s", p.ID, p.Title, tg.RefID)
			expr := grafanaMacros.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				errs = append(errs, fmt.Errorf("%s: %q uses a variable the dashboard does not define", where, tg.Expr))
				continue
			}
			out[where] = expr
		}
	}
	return out, errs
}

// checkDashboard reports everything wrong with a dashboard: a document
// Grafana would not import as intended (no data source input, a query
// bound to one particular data source, overlapping IDs, panels outside the
// grid) and every query that is not PromQL or names a metric, label or
// value the code does not export.
func checkDashboard(data []byte, cat catalog) []error {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return []error{err}
	}
	var errs []error
	if !slices.Contains(d.Inputs, dashboardInput{Name: datasourceInput, Type: "datasource", PluginID: "prometheus"}) {
		errs = append(errs, fmt.Errorf("__inputs: no Prometheus datasource input %s", datasourceInput))
	}
	if d.SchemaVersion < minSchemaVersion || d.SchemaVersion > maxSchemaVersion {
		errs = append(errs, fmt.Errorf("schemaVersion %d, want %d to %d", d.SchemaVersion, minSchemaVersion, maxSchemaVersion))
	}
	if d.UID == "" || d.Title == "" {
		errs = append(errs, errors.New("a dashboard needs a uid and a title, or each import makes a new copy"))
	}
	ids := map[int]string{}
	for _, p := range d.allPanels() {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if prev, ok := ids[p.ID]; ok {
			errs = append(errs, fmt.Errorf("%s: id %d is also panel %q", where, p.ID, prev))
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			errs = append(errs, fmt.Errorf("%s: gridPos %+v is outside the 24-column grid", where, p.GridPos))
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("%s: no query", where))
		}
		refs := []*datasourceRef{p.Datasource}
		for _, tg := range p.Targets {
			refs = append(refs, tg.Datasource)
		}
		for _, ref := range refs {
			if ref == nil || ref.UID != datasourceUID || ref.Type != "prometheus" {
				errs = append(errs, fmt.Errorf("%s: data source %+v, want {prometheus %s}", where, ref, datasourceUID))
				break
			}
		}
	}
	queries, qerrs := d.queries()
	errs = append(errs, qerrs...)
	for _, where := range slices.Sorted(maps.Keys(queries)) {
		for _, err := range checkExpr(queries[where], cat) {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	return errs
}

func readDashboard(t *testing.T) []byte {
	t.Helper()
	return readFile(t, dashboardFile)
}

// TestDashboard checks deploy/monitoring/grafana-dashboard.json.
func TestDashboard(t *testing.T) {
	for _, err := range checkDashboard(readDashboard(t), codeCatalog(t)) {
		t.Errorf("%s: %v", dashboardFile, err)
	}
}

// TestDashboardShowsWhatOperatorsWatch requires a panel for each signal
// the runbook tells operators to watch, so that a panel removed or
// rewritten to another metric is noticed.
func TestDashboardShowsWhatOperatorsWatch(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(readDashboard(t), &d); err != nil {
		t.Fatal(err)
	}
	queries, errs := d.queries()
	for _, err := range errs {
		t.Error(err)
	}
	used := map[string]bool{}
	for _, q := range queries {
		e, err := parser.ParseExpr(q)
		if err != nil {
			continue // TestDashboard reports it
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				used[vs.Name] = true
			}
			return nil
		})
	}
	for _, want := range []string{
		"tenantgate_http_requests_total",                     // request rate by route and code
		"tenantgate_http_request_duration_seconds_bucket",    // latency p50/p99 by route
		"tenantgate_check_decisions_total",                   // decisions
		"tenantgate_index_reads_total",                       // index reads by answered_by
		"tenantgate_sync_lag_seconds",                        // sync lag
		"tenantgate_gateway_stale",                           // staleness
		"tenantgate_sync_slot_retained_wal_bytes",            // slot retained WAL
		"tenantgate_platform_role_allows_total",              // platform-role allows
		"tenantgate_management_outsider_refusals_total",      // outsider refusals
		"tenantgate_spicedb_request_duration_seconds_bucket", // SpiceDB latency by method
		"tenantgate_spicedb_errors_total",                    // SpiceDB errors by method and code
		"tenantgate_postgres_query_duration_seconds_bucket",  // Postgres latency by operation
		"tenantgate_postgres_query_errors_total",             // Postgres errors by operation
	} {
		if !used[want] {
			t.Errorf("%s: no panel queries %s", dashboardFile, want)
		}
	}
}

// TestCheckDashboardRefuses proves the dashboard check fails on each
// mistake it exists to catch, starting from a dashboard it accepts.
func TestCheckDashboardRefuses(t *testing.T) {
	cat := codeCatalog(t)
	const valid = `{
  "__inputs": [{"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}],
  "schemaVersion": 39, "uid": "u", "title": "t",
  "panels": [
    {"id": 1, "type": "row", "title": "r", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "panels": []},
    {"id": 2, "type": "timeseries", "title": "p", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1},
     "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
     "targets": [{"refId": "A", "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                  "expr": "sum by (route, code) (rate(tenantgate_http_requests_total[$__rate_interval]))"}]}
  ]
}`
	cases := []struct {
		name, old, new string
		wantErr        string // empty: no error
	}{
		{"valid", "", "", ""},
		{"a made-up metric", "tenantgate_http_requests_total", "tenantgate_made_up_total", "tenantgate_made_up_total: the code exports no metric"},
		{"a label the metric lacks", "route, code", "route, status", `"status"`},
		{"not PromQL", "[$__rate_interval]))", "[$__rate_interval])", "parse error"},
		{"an undefined variable", "[$__rate_interval]", "[$window]", "variable"},
		{"a fixed data source", `"datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
     "targets"`, `"datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"},
     "targets"`, "data source"},
		{"no data source input", `"name": "DS_PROMETHEUS"`, `"name": "DS_PROM"`, "__inputs"},
		{"an old schema", `"schemaVersion": 39`, `"schemaVersion": 16`, "schemaVersion"},
		{"a repeated id", `"id": 2`, `"id": 1`, "id 1"},
		{"off the grid", `"w": 12, "x": 0`, `"w": 12, "x": 18`, "gridPos"},
		{"not JSON", `"panels": [`, `"panels": `, "invalid character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := valid
			if tc.old != "" {
				if !strings.Contains(doc, tc.old) {
					t.Fatalf("the valid dashboard has no %q", tc.old)
				}
				doc = strings.Replace(doc, tc.old, tc.new, 1)
			}
			errs := checkDashboard([]byte(doc), cat)
			if tc.wantErr == "" {
				for _, err := range errs {
					t.Error(err)
				}
				return
			}
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.wantErr) }) {
				t.Errorf("errors %v, want one containing %q", errs, tc.wantErr)
			}
		})
	}
}
