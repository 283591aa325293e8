package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/devenv"
	"github.com/tenantgate/tenantgate/internal/mirror"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// doctorConfig is a configuration of a good setup: a migrated database,
// embedded SpiceDB and a key file with a usable key.
func doctorConfig(t *testing.T) app.Config {
	t.Helper()
	issuer, err := devenv.GenerateIssuer("https://issuer.test", "aud")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := issuer.WriteJWKSFile(jwks); err != nil {
		t.Fatal(err)
	}
	cfg := app.Default()
	cfg.DatabaseURL = testutil.NewTestDatabase(t)
	cfg.JWKSFile, cfg.Issuer, cfg.Audience = jwks, issuer.Issuer(), issuer.Audience()
	return cfg
}

// doctorReport is what `doctor --json` prints.
type doctorReport struct {
	OK     bool           `json:"ok"`
	Checks []mirror.Check `json:"checks"`
}

func runDoctor(t *testing.T, cfg app.Config) (doctorReport, error) {
	t.Helper()
	cfg.JSON = true
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := app.Doctor(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), &out)
	var r doctorReport
	if jsonErr := json.Unmarshal(out.Bytes(), &r); jsonErr != nil {
		t.Fatalf("doctor --json printed what does not parse (%v):\n%s", jsonErr, out.String())
	}
	return r, err
}

func TestDoctorPassesOnAGoodSetup(t *testing.T) {
	cfg := doctorConfig(t)
	r, err := runDoctor(t, cfg)
	if err != nil || !r.OK {
		t.Fatalf("doctor = %v, ok %v: %+v", err, r.OK, r.Checks)
	}
	want := map[string]mirror.Status{"wal_level": mirror.StatusOK, "publication": mirror.StatusOK,
		"replica identity": mirror.StatusOK, "spicedb": mirror.StatusSkip, "jwks": mirror.StatusOK}
	for _, c := range r.Checks {
		if s, ok := want[c.Name]; ok && c.Status != s {
			t.Errorf("%s: %s (%s), want %s", c.Name, c.Status, c.Detail, s)
		}
		delete(want, c.Name)
	}
	if len(want) > 0 {
		t.Errorf("checks missing: %v", want)
	}

	// Text: one line a check, the status first.
	var out bytes.Buffer
	cfg.JSON = false
	if err := app.Doctor(t.Context(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "OK    wal_level: wal_level = logical\n") {
		t.Errorf("text output lacks the wal_level line:\n%s", out.String())
	}
}

func TestDoctorReportsEachFailureWithItsFix(t *testing.T) {
	cfg := doctorConfig(t)
	testutil.ExecSQL(t, cfg.DatabaseURL, `DROP PUBLICATION tenantgate`, `ALTER TABLE companies REPLICA IDENTITY DEFAULT`)
	cfg.JWKSFile = filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(cfg.JWKSFile, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := runDoctor(t, cfg)
	if !errors.Is(err, authz.ErrInvalid) || r.OK {
		t.Fatalf("doctor = %v, ok %v; want authz.ErrInvalid", err, r.OK)
	}
	fixes := map[string]string{"publication": "tenantgate migrate", "replica identity": "REPLICA IDENTITY FULL", "jwks": "--jwks-url"}
	for _, c := range r.Checks {
		fix, ok := fixes[c.Name]
		if !ok {
			continue
		}
		if c.Status != mirror.StatusFail || !strings.Contains(c.Fix, fix) {
			t.Errorf("%s = %+v; want a failure whose fix names %q", c.Name, c, fix)
		}
		if !strings.Contains(err.Error(), c.Name+": ") {
			t.Errorf("the error does not name %s: %v", c.Name, err)
		}
	}
}

func TestDoctorMetricsShowTheSlot(t *testing.T) {
	cfg := doctorConfig(t)
	cfg.Metrics = true
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testutil.DropReplicationSlots(ctx, cfg.DatabaseURL); err != nil {
			t.Error(err)
		}
	})
	for _, tc := range []struct {
		name, sql, status string
	}{
		{"no slot", "", "missing"},
		{"slot nobody streams from", `SELECT pg_create_logical_replication_slot('` + cfg.SyncSlot + `', 'pgoutput')`, "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sql != "" {
				testutil.ExecSQL(t, cfg.DatabaseURL, tc.sql)
			}
			var out bytes.Buffer
			if err := app.Doctor(t.Context(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), &out); err != nil {
				t.Fatal(err)
			}
			parser := expfmt.NewTextParser(promodel.UTF8Validation)
			families, err := parser.TextToMetricFamilies(&out)
			if err != nil {
				t.Fatalf("doctor --metrics printed what does not parse: %v", err)
			}
			if v := families["tenantgate_sync_slot_active"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
				t.Errorf("tenantgate_sync_slot_active = %v, want 0", v)
			}
			for _, m := range families["tenantgate_sync_slot_wal_status"].GetMetric() {
				want := 0.0
				if m.GetLabel()[0].GetValue() == tc.status {
					want = 1
				}
				if v := m.GetGauge().GetValue(); v != want {
					t.Errorf("wal_status %s = %v, want %v", m.GetLabel()[0].GetValue(), v, want)
				}
			}
			if _, ok := families["tenantgate_sync_slot_retained_wal_bytes"]; !ok {
				t.Error("no tenantgate_sync_slot_retained_wal_bytes")
			}
		})
	}
}

func TestDoctorReachesSpiceDBWithTheToken(t *testing.T) {
	sdb := testutil.NewSpiceDB(t, testutil.NewEmptyTestDatabase(t))
	for _, tc := range []struct {
		name, token string
		want        mirror.Status
	}{
		{"right token", sdb.Token(), mirror.StatusOK},
		{"wrong token", "not-the-token", mirror.StatusFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := doctorConfig(t)
			cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = sdb.Endpoint(), tc.token, true
			r, err := runDoctor(t, cfg)
			if c := findCheck(t, r, "spicedb"); c.Status != tc.want || c.Transient {
				t.Errorf("spicedb = %+v, want %s and not transient", c, tc.want)
			}
			// A refused token is the spicedb check's to report, not a
			// datastore setting to blame.
			if c := findCheck(t, r, "spicedb watch"); c.Status != map[mirror.Status]mirror.Status{mirror.StatusOK: mirror.StatusOK, mirror.StatusFail: mirror.StatusSkip}[tc.want] {
				t.Errorf("spicedb watch = %+v on a datastore with commit timestamps", c)
			}
			if tc.want == mirror.StatusFail && (!errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), "--spicedb-token")) {
				t.Errorf("doctor = %v; want authz.ErrInvalid naming --spicedb-token", err)
			}
		})
	}
}

// TestDoctorWarnsWhenSpiceDBCannotWatch runs SpiceDB on a datastore
// without commit timestamps: it answers checks, but its Watch, which the
// permission index follows, fails. doctor warns with the fix, whether it
// reaches that SpiceDB or the datastore of an embedded one.
func TestDoctorWarnsWhenSpiceDBCannotWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	pg := testutil.NewTestPostgres(t, "track_commit_timestamp = off")
	if err := pg.CreateDatabase(ctx, "spicedb", ""); err != nil {
		t.Fatal(err)
	}
	sdb := testutil.NewSpiceDB(t, pg.URL("spicedb"))
	for _, tc := range []struct {
		name      string
		configure func(*app.Config)
	}{
		{"remote", func(cfg *app.Config) {
			cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure = sdb.Endpoint(), sdb.Token(), true
		}},
		{"embedded on the datastore", func(cfg *app.Config) { cfg.SpiceDBDatastoreURL = pg.URL("spicedb") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := doctorConfig(t)
			tc.configure(&cfg)
			r, err := runDoctor(t, cfg)
			if err != nil {
				t.Fatalf("doctor = %v; a Watch that fails is a warning, not a failure", err)
			}
			c := findCheck(t, r, "spicedb watch")
			if c.Status != mirror.StatusWarn || !strings.Contains(c.Fix, "track_commit_timestamp = on") {
				t.Errorf("spicedb watch = %+v; want a warning whose fix names track_commit_timestamp", c)
			}
		})
	}
}

func findCheck(t *testing.T, r doctorReport, name string) mirror.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("doctor has no %q check: %+v", name, r.Checks)
	return mirror.Check{}
}
