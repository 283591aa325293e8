package mirror

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// goodFacts are those of a server the sync runs on.
func goodFacts() ReplicationFacts {
	return ReplicationFacts{
		WALLevel: "logical", Replication: true,
		MaxSlots: 10, UsedSlots: 1, MaxWALSenders: 10, UsedWALSenders: 1,
		PublicationExists: true, PublicationTables: []string{tableCompanies, tableMemberships},
		ReplicaIdentity:    map[string]string{tableCompanies: "f", tableMemberships: "f"},
		MaxSlotWALKeepSize: "10240", ServerPort: 5432, URLPort: 5432,
	}
}

func TestJudgeReplication(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*ReplicationFacts)
		check  string
		want   Status
		fix    string
	}{
		{"all good", func(*ReplicationFacts) {}, "", StatusOK, ""},
		{"wal_level replica", func(f *ReplicationFacts) { f.WALLevel = "replica" }, "wal_level", StatusFail, "wal_level = logical"},
		{"no replication attribute", func(f *ReplicationFacts) { f.Replication = false }, "replication privilege", StatusFail, "WITH REPLICATION"},
		{"superuser", func(f *ReplicationFacts) { f.Replication, f.Superuser = false, true }, "replication privilege", StatusOK, ""},
		{"rds_replication", func(f *ReplicationFacts) { f.Replication, f.ManagedRole = false, "rds_replication" }, "replication privilege", StatusOK, ""},
		{"no free slot", func(f *ReplicationFacts) { f.UsedSlots = 10 }, "replication slots", StatusFail, "max_replication_slots"},
		{"slot name of another database", func(f *ReplicationFacts) { f.Slot, f.SlotTaken, f.SlotElsewhere = "tenantgate", true, "other" }, "replication slots", StatusFail, "--sync-slot"},
		{"no free slot but ours exists", func(f *ReplicationFacts) { f.UsedSlots, f.SlotExists = 10, true }, "replication slots", StatusOK, ""},
		{"no free wal sender", func(f *ReplicationFacts) { f.UsedWALSenders = 10 }, "wal senders", StatusFail, "max_wal_senders"},
		{"no publication", func(f *ReplicationFacts) { f.PublicationExists, f.PublicationTables = false, nil }, "publication", StatusFail, "tenantgate migrate"},
		{"publication lacks a table", func(f *ReplicationFacts) { f.PublicationTables = []string{tableCompanies} }, "publication", StatusFail, "ADD TABLE company_memberships"},
		{"replica identity default", func(f *ReplicationFacts) { f.ReplicaIdentity[tableMemberships] = "d" }, "replica identity", StatusFail, "REPLICA IDENTITY FULL"},
		{"table missing", func(f *ReplicationFacts) { delete(f.ReplicaIdentity, tableCompanies) }, "replica identity", StatusFail, "REPLICA IDENTITY FULL"},
		{"keep size unlimited", func(f *ReplicationFacts) { f.MaxSlotWALKeepSize = "-1" }, "max_slot_wal_keep_size", StatusWarn, "set max_slot_wal_keep_size"},
		{"transaction pooler", func(f *ReplicationFacts) { f.BackendPIDsDiffer = true }, "direct connection", StatusFail, "transaction pooler"},
		{"other port", func(f *ReplicationFacts) { f.URLPort = 6432 }, "direct connection", StatusWarn, "pooler"},
		{"unix socket", func(f *ReplicationFacts) { f.ServerPort = 0 }, "direct connection", StatusOK, ""},
		{"replication refused", func(f *ReplicationFacts) {
			f.ReplicationErr = &pgconn.PgError{Code: "28000", Message: `no pg_hba.conf entry for replication connection from host "1.2.3.4"`}
		}, "replication connection", StatusFail, "pg_hba.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFacts()
			tc.change(&f)
			for _, c := range JudgeReplication(f, DefaultPublication) {
				want := StatusOK
				if c.Name == tc.check {
					want = tc.want
					if !strings.Contains(c.Fix, tc.fix) {
						t.Errorf("%s: fix %q lacks %q", c.Name, c.Fix, tc.fix)
					}
				}
				if c.Status != want {
					t.Errorf("%s: %s (%s), want %s", c.Name, c.Status, c.Detail, want)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		fallback      error
		invalid       bool
		unavailable   bool
		hintFragments string
	}{
		{"bad password", &pgconn.PgError{Code: "28P01"}, authz.ErrUnavailable, true, false, "password"},
		{"wal_level", &pgconn.PgError{Code: "55000", Message: "logical decoding requires \"wal_level\" >= \"logical\""}, nil, true, false, "wal_level = logical"},
		{"no privilege", &pgconn.PgError{Code: "42501"}, nil, true, false, "REPLICATION"},
		{"no free slot", &pgconn.PgError{Code: "53400", Message: "all replication slots are in use"}, nil, true, false, "max_replication_slots"},
		{"no publication", &pgconn.PgError{Code: "42704", Message: `publication "tenantgate" does not exist`}, nil, true, false, "tenantgate migrate"},
		{"transaction pooler", &pgconn.PgError{Code: "26000", Message: `prepared statement "stmtcache_1" does not exist`}, nil, true, false, "transaction pooler"},
		{"too many connections", &pgconn.PgError{Code: "53300"}, authz.ErrUnavailable, false, true, ""},
		{"slot in use", &pgconn.PgError{Code: "55006"}, nil, false, false, ""},
		{"network", errors.New("connection reset"), authz.ErrUnavailable, false, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err, tc.fallback)
			if errors.Is(err, authz.ErrInvalid) != tc.invalid || errors.Is(err, authz.ErrUnavailable) != tc.unavailable {
				t.Fatalf("classify = %v: invalid %v, unavailable %v; want %v, %v", err,
					errors.Is(err, authz.ErrInvalid), errors.Is(err, authz.ErrUnavailable), tc.invalid, tc.unavailable)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("classify = %v: lost the cause", err)
			}
			if !strings.Contains(err.Error(), tc.hintFragments) {
				t.Errorf("classify = %v: lacks %q", err, tc.hintFragments)
			}
		})
	}
}
