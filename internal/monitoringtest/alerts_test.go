package monitoringtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"sigs.k8s.io/yaml"
)

const (
	alertsFile     = "deploy/monitoring/alerts.yaml"
	operationsFile = "docs/operations.md"
	// runbookPrefix is where every runbook_url points: the operator's guide.
	runbookPrefix = operationsFile + "#"
)

var severities = []string{"critical", "warning", "info"}

// parseRules parses a rule file as Prometheus does, strictly: an unknown
// field (a misspelt `for`) is an error, as it is for `promtool check
// rules`, not a silently dropped setting.
func parseRules(data []byte) (*rulefmt.RuleGroups, []error) {
	return rulefmt.Parse(data, false, model.LegacyValidation)
}

// checkRules reports everything wrong with a rule file: what Prometheus
// would refuse, then what tenantgate's alerts promise beyond it (every
// alert waits with an explicit `for`, carries a severity, a summary, a
// description and a runbook link to a heading of docs/operations.md),
// then every metric, label or value its expressions name that the code
// does not export.
func checkRules(data []byte, cat catalog, anchors map[string]bool) []error {
	groups, errs := parseRules(data)
	if len(errs) > 0 {
		return errs
	}
	// rulefmt reads an absent `for` as 0; only the raw document tells
	// whether the author chose it.
	var raw struct {
		Groups []struct {
			Rules []map[string]any `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return []error{err}
	}
	seen := map[string]bool{}
	for gi, g := range groups.Groups {
		for ri, r := range g.Rules {
			name := r.Alert
			fail := func(format string, args ...any) {
				errs = append(errs, fmt.Errorf("group %s, alert %s: %s", g.Name, name, fmt.Sprintf(format, args...)))
			}
			if r.Record != "" {
				name = r.Record
				fail("a recording rule: this file holds alerts only")
				continue
			}
			if seen[name] {
				fail("defined twice")
			}
			seen[name] = true
			if !strings.HasPrefix(name, "Tenantgate") {
				fail("the name does not start with Tenantgate, which keeps it apart from other alerts")
			}
			if _, ok := raw.Groups[gi].Rules[ri]["for"]; !ok {
				fail("no `for`: say how long the condition must hold, 0m for at once")
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				fail("severity %q, want one of %v", r.Labels["severity"], severities)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					fail("no %s annotation", key)
				}
			}
			if url := r.Annotations["runbook_url"]; url != "" {
				anchor, ok := strings.CutPrefix(url, runbookPrefix)
				if !ok || !anchors[anchor] {
					fail("runbook_url %q is not %s followed by a heading's anchor", url, runbookPrefix)
				}
			}
			for _, err := range checkExpr(r.Expr, cat) {
				fail("%v", err)
			}
		}
	}
	return errs
}

// headingAnchors are the anchors GitHub gives the headings of a markdown
// document: lower case, spaces to hyphens, punctuation dropped, a repeated
// one numbered. Lines inside code fences are not headings.
func headingAnchors(markdown string) map[string]bool {
	anchors := map[string]bool{}
	count := map[string]int{}
	fenced := false
	sc := bufio.NewScanner(strings.NewReader(markdown))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		text, ok := strings.CutPrefix(line, "#")
		if fenced || !ok {
			continue
		}
		text = strings.TrimLeft(text, "#")
		if !strings.HasPrefix(text, " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(text)) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := count[slug]; n > 0 {
			count[slug]++
			slug = fmt.Sprintf("%s-%d", slug, n)
		} else {
			count[slug] = 1
		}
		anchors[slug] = true
	}
	return anchors
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestHeadingAnchors(t *testing.T) {
	doc := "# Operating tenantgate\n## Slot and WAL: what to watch\n```sh\n# not a heading\n```\n### The staleness bound\n## Upgrades\n## Upgrades\n#hashtag\n"
	got := headingAnchors(doc)
	for _, want := range []string{"operating-tenantgate", "slot-and-wal-what-to-watch", "the-staleness-bound", "upgrades", "upgrades-1"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	for _, not := range []string{"not-a-heading", "hashtag"} {
		if got[not] {
			t.Errorf("anchor %q made from a line that is no heading", not)
		}
	}
}

// TestAlertRules checks deploy/monitoring/alerts.yaml.
func TestAlertRules(t *testing.T) {
	cat := codeCatalog(t)
	anchors := headingAnchors(string(readFile(t, operationsFile)))
	for _, err := range checkRules(readFile(t, alertsFile), cat, anchors) {
		t.Errorf("%s: %v", alertsFile, err)
	}
}

// alertRow is one row of the alert table of docs/operations.md.
type alertRow struct {
	name, expr, forDuration string
}

// tableExpr reads the expression cell of the alert table: the expression
// in backquotes, optionally followed by "for <duration>".
var tableExpr = regexp.MustCompile("^`([^`]+)`(?: for ([0-9]+[smhdwy]))?")

// operationsAlerts reads the alert table of the "Metrics and alerts"
// section of docs/operations.md.
func operationsAlerts(markdown []byte) ([]alertRow, error) {
	_, section, ok := bytes.Cut(markdown, []byte("\n## Metrics and alerts\n"))
	if !ok {
		return nil, fmt.Errorf("%s has no section \"Metrics and alerts\"", operationsFile)
	}
	if end := bytes.Index(section, []byte("\n## ")); end >= 0 {
		section = section[:end]
	}
	var rows []alertRow
	for line := range strings.SplitSeq(string(section), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(line, "|") {
			continue
		}
		name, expr := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		if name == "alert" || strings.Trim(name, "-") == "" {
			continue // the header and its rule
		}
		m := tableExpr.FindStringSubmatch(expr)
		if m == nil {
			return nil, fmt.Errorf("%s: alert %q: no expression in backquotes", operationsFile, name)
		}
		rows = append(rows, alertRow{name: name, expr: m[1], forDuration: m[2]})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows in the alert table", operationsFile)
	}
	return rows, nil
}

// TestAlertsCoverOperationsTable ties the rule file to the runbook: every
// alert the runbook suggests is in the file with the same expression (and
// the same `for` where the runbook gives one), so neither drifts from the
// other unnoticed.
func TestAlertsCoverOperationsTable(t *testing.T) {
	rows, err := operationsAlerts(readFile(t, operationsFile))
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := parseRules(readFile(t, alertsFile))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", alertsFile, errs)
	}
	normalize := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	byExpr := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			byExpr[normalize(r.Expr)] = r
		}
	}
	for _, row := range rows {
		r, ok := byExpr[normalize(row.expr)]
		if !ok {
			t.Errorf("%s: alert %q: no alert in %s has the expression %s", operationsFile, row.name, alertsFile, row.expr)
			continue
		}
		if row.forDuration == "" {
			continue
		}
		want, err := model.ParseDuration(row.forDuration)
		if err != nil {
			t.Errorf("%s: alert %q: for %s: %v", operationsFile, row.name, row.forDuration, err)
		} else if r.For != want {
			t.Errorf("%s: %s has for: %s, %s says %s", alertsFile, r.Alert, r.For, operationsFile, want)
		}
	}
}

// TestCheckRulesRefuses proves the rule check fails on each mistake it
// exists to catch, starting from an alert it accepts.
func TestCheckRulesRefuses(t *testing.T) {
	cat := codeCatalog(t)
	anchors := map[string]bool{"metrics-and-alerts": true}
	const valid = `groups:
  - name: g
    rules:
      - alert: TenantgateX
        expr: rate(tenantgate_sync_stream_failures_total[5m]) > 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: s
          description: 'on {{ $labels.instance }}'
          runbook_url: docs/operations.md#metrics-and-alerts
`
	cases := []struct {
		name     string
		old, new string
		wantErr  string // empty: no error
	}{
		{"valid", "", "", ""},
		{"a made-up metric", "tenantgate_sync_stream_failures_total", "tenantgate_made_up_total", "tenantgate_made_up_total: the code exports no metric"},
		{"a label the metric lacks", "total[5m]", `total{table="companies"}[5m]`, `no label "table"`},
		{"not PromQL", "[5m]) > 0", "[5m] > 0", "could not parse"},
		{"no for", "        for: 5m\n", "", "no `for`"},
		{"a misspelt field", "for: 5m", "fro: 5m", "fro"},
		{"no severity", "severity: warning", "team: x", "severity"},
		{"an unknown severity", "severity: warning", "severity: page", "severity"},
		{"no summary", "          summary: s\n", "", "no summary"},
		{"a runbook to a missing heading", "#metrics-and-alerts", "#no-such-section", "#no-such-section"},
		{"a runbook elsewhere", "docs/operations.md#", "docs/design.md#", "runbook_url"},
		{"a broken template", "{{ $labels.instance }}", "{{ $labels.instance ", "description"},
		{"a foreign name", "alert: TenantgateX", "alert: X", "Tenantgate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := valid
			if tc.old != "" {
				if !strings.Contains(doc, tc.old) {
					t.Fatalf("the valid document has no %q", tc.old)
				}
				doc = strings.Replace(doc, tc.old, tc.new, 1)
			}
			errs := checkRules([]byte(doc), cat, anchors)
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
