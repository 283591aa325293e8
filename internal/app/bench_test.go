package app_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// tinyBench is the bench at a size that runs in seconds.
func tinyBench(t *testing.T) app.Config {
	t.Helper()
	cfg := app.Default()
	cfg.BenchSystems = "floor,sql,embedded"
	cfg.BenchCompanies, cfg.BenchUsers, cfg.BenchMemberships = 60, 100, 300
	cfg.BenchListSizes = "10,30"
	cfg.BenchChecks, cfg.BenchCheckUsers, cfg.BenchBulkSize = 300, 40, 50
	cfg.BenchListRepeats = 3
	cfg.BenchLagRate, cfg.BenchLagDuration = 200, time.Second
	cfg.BenchIndexSizes = "20000"
	dir := t.TempDir()
	cfg.BenchChart, cfg.BenchLogDir = filepath.Join(dir, "chart.svg"), dir
	return cfg
}

// TestBenchSmoke runs the whole bench command on a tiny data set against
// real PostgreSQL, the floor and both embedded gateways as processes, and
// checks that it prints the table and writes the chart.
func TestBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cfg := tinyBench(t)
	var err error
	if cfg.BenchTenantgateBin, err = testutil.BuildTenantgate(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := app.Bench(ctx, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), &out); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	t.Log("\n" + table)
	for _, row := range []string{
		"| floor | check |", "| sql | check |", "| sql | list of 10 |", "| sql | list of 30 |",
		"| embedded index=off | check |", "| embedded index=off | bulk, 50 per call |", "| embedded index=off | list of 10 |",
		"| embedded index=on | check |", "| embedded index=on | bulk, 50 per call |", "| embedded index=on | list of 30 |",
		"| embedded index=on | lag at 200 changes/s |", "| index, in this process | build from 20,000 memberships |",
	} {
		if !strings.Contains(table, row) {
			t.Errorf("the table has no row starting %q", row)
		}
	}
	for _, want := range []string{"logical CPUs", "load average", "go1.", "| system | measure | rate | p50 | p99 |"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table's header lacks %q", want)
		}
	}
	chart, err := os.ReadFile(cfg.BenchChart)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(chart))
	var bars int
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed XML: %v", err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "rect" {
			bars++
		}
	}
	// The background, and a bar per single check, bulk and list row.
	if !bytes.HasPrefix(chart, []byte("<svg ")) || bars < 1+4+2+6 {
		t.Errorf("the chart is not an SVG with a bar per row (%d rect elements):\n%s", bars, chart)
	}
}

func TestBenchFlagsAreValidated(t *testing.T) {
	tests := []struct {
		name   string
		change func(*app.Config)
		want   string
	}{
		{"unknown system", func(c *app.Config) { c.BenchSystems = "floor,oracle" }, `unknown system "oracle"`},
		{"no system", func(c *app.Config) { c.BenchSystems = " , " }, "no system"},
		{"list size not a number", func(c *app.Config) { c.BenchListSizes = "10,many" }, "--bench-list-sizes"},
		{"list larger than the data set", func(c *app.Config) { c.BenchListSizes = "61" }, "list size 61"},
		{"no clients", func(c *app.Config) { c.BenchClients = 0 }, "clients must be positive"},
		{"bulk above the gateway's limit", func(c *app.Config) { c.BenchBulkSize = 1001 }, "at most 1000"},
		{"spicedb missing", func(c *app.Config) {
			c.BenchSystems = "sql,remote"
			c.BenchSpiceDBBin = filepath.Join(t.TempDir(), "spicedb")
		}, "go build -o bin/spicedb github.com/authzed/spicedb/cmd/spicedb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tinyBench(t)
			tt.change(&cfg)
			err := app.Bench(t.Context(), cfg, slog.New(slog.DiscardHandler), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Bench = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
