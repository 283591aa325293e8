package mirror

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// TestProgressReport checks what a long backfill logs: rows, total, rate and
// an ETA from the rate so far, and no ETA when it cannot be known.
func TestProgressReport(t *testing.T) {
	tests := []struct {
		name        string
		rows, total int64
		elapsed     time.Duration
		wantRate    int64
		wantETA     string
	}{
		{"a quarter in 10 s", 250, 1000, 10 * time.Second, 24, "30s"},
		{"done", 1000, 1000, 10 * time.Second, 99, "0s"},
		{"nothing read yet", 0, 1000, 10 * time.Second, 0, "0s"},
		{"more rows than counted at the start", 1200, 1000, 10 * time.Second, 119, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newProgress(slog.New(slog.NewJSONHandler(&out, nil)), tt.total)
			p.started = time.Now().Add(-tt.elapsed)
			p.rows = tt.rows
			p.report("sync: snapshot progress")
			var rec struct {
				Msg   string  `json:"msg"`
				Rows  int64   `json:"rows"`
				Total int64   `json:"total"`
				Rate  int64   `json:"rows_per_second"`
				ETA   float64 `json:"eta"`
			}
			if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
				t.Fatalf("%v: %s", err, out.Bytes())
			}
			// The elapsed time is a little over tt.elapsed by the time
			// report reads the clock, so the rate is a little under.
			if rec.Rows != tt.rows || rec.Total != tt.total || rec.Rate < tt.wantRate || rec.Rate > tt.wantRate+1 {
				t.Errorf("logged rows %d of %d at %d/s, want %d of %d at %d-%d/s", rec.Rows, rec.Total, rec.Rate, tt.rows, tt.total, tt.wantRate, tt.wantRate+1)
			}
			if eta := time.Duration(rec.ETA).String(); eta != tt.wantETA {
				t.Errorf("eta %s, want %s", eta, tt.wantETA)
			}
		})
	}
}
