package app

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestComposeSeedIsTheDemoData keeps deploy/compose/sample-data.sql, which
// SQL clients load, in step with the demo's data set.
func TestComposeSeedIsTheDemoData(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/compose/sample-data.sql")
	if err != nil {
		t.Fatal(err)
	}
	seed := regexp.MustCompile(`\s+`).ReplaceAllString(string(raw), " ")
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	for _, c := range demoCompanies {
		parent := "null"
		if c.ParentID != "" {
			parent = quote(c.ParentID)
		}
		row := fmt.Sprintf("(%s, %s, %s)", quote(c.ID), quote(c.Name), parent)
		if !strings.Contains(seed, row) {
			t.Errorf("seed lacks company %s", row)
		}
	}
	for _, m := range demoMemberships {
		row := fmt.Sprintf("(%s, %s, %s, %s)", quote(m.UserID), quote(m.CompanyID), quote(string(m.Role)), quote(string(m.Status)))
		if !strings.Contains(seed, row) {
			t.Errorf("seed lacks membership %s", row)
		}
	}
	if got, want := strings.Count(seed, "insert into companies"), len(demoCompanies); got != want {
		t.Errorf("seed inserts %d companies, the demo has %d", got, want)
	}
}
