package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/store"
)

// classify wraps err in authz.ErrInvalid, with the fix, when PostgreSQL's
// answer is one no retry can cure (a bad password, a missing privilege,
// wal_level, no free slot, no publication), and in fallback otherwise (nil
// leaves err as it is). A retrying caller gives up on the first at once.
func classify(err, fallback error) error {
	if hint := permanentHint(err); hint != "" {
		return fmt.Errorf("%w: %s: %w", authz.ErrInvalid, hint, err)
	}
	if fallback == nil {
		return err
	}
	return fmt.Errorf("%w: %w", fallback, err)
}

// permanentHint names the real cause of a PostgreSQL error no retry can
// cure and how to fix it, or is "" for any other error.
func permanentHint(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return ""
	}
	if hint := store.ConnectHint(err); hint != "" {
		return hint
	}
	switch pgErr.Code {
	case "42501": // insufficient_privilege
		return "the user lacks a privilege the sync needs (logical replication needs the REPLICATION attribute): ALTER ROLE <user> WITH REPLICATION, or on AWS RDS/Aurora GRANT rds_replication TO <user>; run `tenantgate doctor` for details"
	case "55000": // object_not_in_prerequisite_state
		if strings.Contains(pgErr.Message, "wal_level") {
			return "the server's wal_level is not logical: set wal_level = logical and restart PostgreSQL (AWS RDS/Aurora: rds.logical_replication = 1 in the parameter group; Cloud SQL: cloudsql.logical_decoding = on)"
		}
		return "the server cannot do logical decoding now (is it a read replica?): point --database-url at the primary"
	case "53400": // configuration_limit_exceeded: max_replication_slots or max_wal_senders
		return "the server has no free replication slot or WAL sender: drop unused slots (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active) or raise max_replication_slots / max_wal_senders and restart"
	case "42704": // undefined_object: the publication
		return "a publication or object the sync reads does not exist: run `tenantgate migrate`, which creates publication " + DefaultPublication
	case "42P01", "3F000": // undefined_table, invalid_schema_name
		return "tenantgate's tables are missing: run `tenantgate migrate`"
	case "26000", "42P05": // invalid_sql_statement_name, duplicate_prepared_statement
		// A statement prepared on one server connection and run on
		// another: only a transaction pooler does that.
		return "a transaction pooler (PgBouncer in transaction mode) is between this process and PostgreSQL: point the sync's --database-url at PostgreSQL itself; a gateway's URL needs default_query_exec_mode=cache_describe"
	}
	return ""
}

// Status is the outcome of one preflight check.
type Status string

// Outcomes: a failure stops the sync; a warning is shown but does not.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	// StatusSkip is a check of something this configuration does not use.
	StatusSkip Status = "skip"
)

// Check is one judged fact, with the fix when it is not ok.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Transient marks a failure a retry may cure (a server that is down),
	// as opposed to one that needs the fix.
	Transient bool `json:"transient,omitempty"`
}

// ReplicationFacts is what the preflight reads of the server, the user and
// the publication; JudgeReplication decides over it.
type ReplicationFacts struct {
	WALLevel string
	// Superuser and Replication are the user's role attributes; ManagedRole
	// is a managed service's role that grants replication instead (e.g.
	// rds_replication), "" when the user is not a member of one.
	Superuser, Replication bool
	ManagedRole            string
	// SlotExists is true when the sync's slot is there already and needs no
	// free one.
	Slot       string
	SlotExists bool
	// SlotTaken is true when a slot of that name belongs to another
	// database of the server (SlotElsewhere, "" for a physical slot):
	// slot names are the server's, and the sync cannot use it.
	SlotTaken                     bool
	SlotElsewhere                 string
	MaxSlots, UsedSlots           int
	MaxWALSenders, UsedWALSenders int
	PublicationExists             bool
	PublicationTables             []string
	// ReplicaIdentity maps each mirrored table found to its relreplident
	// ('f' is FULL).
	ReplicaIdentity map[string]string
	// MaxSlotWALKeepSize is the setting's text; "-1" is unlimited.
	MaxSlotWALKeepSize string
	// BackendPIDsDiffer is true when two transactions on one connection ran
	// in different server processes: a transaction pooler is in between.
	BackendPIDsDiffer bool
	// ServerPort is the port the server accepted this session on (0 over a
	// Unix socket), URLPort the one --database-url names.
	ServerPort, URLPort int
	// ReplicationErr is the outcome of opening a replication connection and
	// running IDENTIFY_SYSTEM, the first thing the sync does with it.
	ReplicationErr error
}

// mirroredTables are the tables the publication must hold.
var mirroredTables = []string{tableCompanies, tableMemberships}

// JudgeReplication decides, over facts read by ReadReplicationFacts,
// whether the sync can run, each check with its fix.
func JudgeReplication(f ReplicationFacts, publication string) []Check {
	return []Check{
		judgeWALLevel(f),
		judgeReplicationRole(f),
		judgeReplicationConnection(f),
		judgeSlots(f),
		judgeWALSenders(f),
		judgePublication(f, publication),
		judgeReplicaIdentity(f),
		judgeKeepSize(f),
		judgePooler(f),
	}
}

func judgeWALLevel(f ReplicationFacts) Check {
	c := Check{Name: "wal_level", Detail: "wal_level = " + f.WALLevel}
	if f.WALLevel == "logical" {
		c.Status = StatusOK
		return c
	}
	c.Status, c.Fix = StatusFail, "set wal_level = logical and restart PostgreSQL (AWS RDS/Aurora: rds.logical_replication = 1 in the parameter group; Cloud SQL: cloudsql.logical_decoding = on)"
	return c
}

func judgeReplicationRole(f ReplicationFacts) Check {
	c := Check{Name: "replication privilege", Status: StatusOK}
	switch {
	case f.Superuser:
		c.Detail = "the user is a superuser"
	case f.Replication:
		c.Detail = "the user has the REPLICATION attribute"
	case f.ManagedRole != "":
		c.Detail = "the user is a member of " + f.ManagedRole + " (managed service)"
	default:
		c.Status, c.Detail = StatusFail, "the user has neither the REPLICATION attribute nor a managed service's replication role"
		c.Fix = "ALTER ROLE <user> WITH REPLICATION (AWS RDS/Aurora: GRANT rds_replication TO <user>)"
	}
	return c
}

func judgeReplicationConnection(f ReplicationFacts) Check {
	c := Check{Name: "replication connection", Status: StatusOK, Detail: "a replication connection opens and answers IDENTIFY_SYSTEM"}
	if f.ReplicationErr != nil {
		c.Status, c.Detail = StatusFail, f.ReplicationErr.Error()
		c.Fix = permanentHint(f.ReplicationErr)
		if c.Fix == "" {
			c.Transient = true
			c.Fix = "check the server is reachable and accepts replication connections (pg_hba.conf `replication` entries; poolers do not pass them)"
		}
	}
	return c
}

func judgeSlots(f ReplicationFacts) Check {
	c := Check{Name: "replication slots", Status: StatusOK,
		Detail: fmt.Sprintf("%d of max_replication_slots = %d in use", f.UsedSlots, f.MaxSlots)}
	switch {
	case f.SlotTaken:
		c.Status = StatusFail
		c.Detail, c.Fix = slotTaken(f.Slot, f.SlotElsewhere), slotTakenFix
	case f.SlotExists:
		c.Detail += "; the sync's slot exists"
	case f.UsedSlots >= f.MaxSlots:
		// A fresh start also needs a temporary slot only with --reconcile
		// off; one free slot is what the persistent sync needs.
		c.Status = StatusFail
		c.Fix = "drop unused slots (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active) or raise max_replication_slots and restart"
	}
	return c
}

// slotTakenFix is the fix when the sync's slot name is another
// database's.
const slotTakenFix = "give this sync a --sync-slot of its own: every database's sync needs a name no other database of the server uses"

// slotTaken says that the slot named slot belongs to database (""
// for a physical slot) rather than the sync's.
func slotTaken(slot, database string) string {
	owner := "a physical replication slot"
	if database != "" {
		owner = "the slot of database " + database
	}
	return fmt.Sprintf("replication slot %s is %s on this server (slot names are the server's, not a database's)", slot, owner)
}

func judgeWALSenders(f ReplicationFacts) Check {
	c := Check{Name: "wal senders", Status: StatusOK,
		Detail: fmt.Sprintf("%d of max_wal_senders = %d in use", f.UsedWALSenders, f.MaxWALSenders)}
	if f.UsedWALSenders >= f.MaxWALSenders {
		c.Status, c.Fix = StatusFail, "raise max_wal_senders and restart, or stop an unused replication client"
	}
	return c
}

func judgePublication(f ReplicationFacts, publication string) Check {
	c := Check{Name: "publication", Status: StatusOK, Detail: fmt.Sprintf("publication %s holds %s", publication, strings.Join(mirroredTables, " and "))}
	if !f.PublicationExists {
		c.Status, c.Detail = StatusFail, fmt.Sprintf("publication %s does not exist", publication)
		c.Fix = "run `tenantgate migrate`"
		return c
	}
	var missing []string
	for _, t := range mirroredTables {
		if !slices.Contains(f.PublicationTables, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		c.Status, c.Detail = StatusFail, fmt.Sprintf("publication %s lacks %s", publication, strings.Join(missing, ", "))
		c.Fix = fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s (or run `tenantgate migrate`)", publication, strings.Join(missing, ", "))
	}
	return c
}

func judgeReplicaIdentity(f ReplicationFacts) Check {
	c := Check{Name: "replica identity", Status: StatusOK, Detail: "REPLICA IDENTITY FULL on " + strings.Join(mirroredTables, " and ")}
	var wrong []string
	for _, t := range mirroredTables {
		if f.ReplicaIdentity[t] != "f" {
			wrong = append(wrong, t)
		}
	}
	if len(wrong) > 0 {
		// Without the old row a delete or an update cannot say which
		// relationship to remove.
		c.Status, c.Detail = StatusFail, "not REPLICA IDENTITY FULL (or missing): "+strings.Join(wrong, ", ")
		c.Fix = "ALTER TABLE <table> REPLICA IDENTITY FULL for each (or run `tenantgate migrate`)"
	}
	return c
}

func judgeKeepSize(f ReplicationFacts) Check {
	c := Check{Name: "max_slot_wal_keep_size", Status: StatusOK, Detail: "max_slot_wal_keep_size = " + f.MaxSlotWALKeepSize}
	if f.MaxSlotWALKeepSize == "-1" || f.MaxSlotWALKeepSize == "" {
		// A warning: unbounded is a choice, but a stopped sync then fills
		// the server's disk.
		c.Status, c.Detail = StatusWarn, "max_slot_wal_keep_size is unlimited: a stopped sync keeps WAL until the disk is full"
		c.Fix = "set max_slot_wal_keep_size (e.g. 10GB) so a stopped sync's slot is invalidated instead; the sync then starts over with a fresh snapshot"
	}
	return c
}

// judgePooler is a heuristic: a transaction pooler shows as two
// transactions on one client connection served by different backends; any
// pooler or proxy as a server port unlike the URL's.
func judgePooler(f ReplicationFacts) Check {
	c := Check{Name: "direct connection", Status: StatusOK, Detail: "no pooler detected (heuristic: backend PID and server port)"}
	switch {
	case f.BackendPIDsDiffer:
		c.Status, c.Detail = StatusFail, "two transactions on one connection ran in different server processes: a transaction pooler is in between, and the sync's session lock would not hold"
		c.Fix = "point --database-url at PostgreSQL itself (or a session-mode pooler), not a transaction pooler such as PgBouncer in transaction mode"
	case f.ServerPort != 0 && f.URLPort != 0 && f.ServerPort != f.URLPort:
		c.Status = StatusWarn
		c.Detail = fmt.Sprintf("the URL names port %d but the server accepted the session on %d: a pooler or proxy may be in between", f.URLPort, f.ServerPort)
		c.Fix = "if it is a transaction pooler, point --database-url at PostgreSQL itself; a port forward or session pooler is fine"
	}
	return c
}

// managedReplicationRoles grant replication on managed services that do
// not hand out the REPLICATION attribute.
var managedReplicationRoles = []string{"rds_replication"}

// factsSQL reads every fact one session can tell.
const factsSQL = `SELECT current_setting('wal_level'),
	r.rolsuper, r.rolreplication,
	coalesce((SELECT m.rolname FROM pg_roles m WHERE m.rolname = ANY($3) AND pg_has_role(r.oid, m.oid, 'member') LIMIT 1), ''),
	EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()),
	coalesce((SELECT coalesce(database::text, '') FROM pg_replication_slots WHERE slot_name = $1 AND database IS DISTINCT FROM current_database()), ''),
	EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND database IS DISTINCT FROM current_database()),
	current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
	current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int,
	EXISTS (SELECT FROM pg_publication WHERE pubname = $2),
	coalesce((SELECT array_agg(tablename::text) FROM pg_publication_tables WHERE pubname = $2), '{}'),
	current_setting('max_slot_wal_keep_size'),
	coalesce(inet_server_port(), 0)
FROM pg_roles r WHERE r.rolname = current_user`

// replicaIdentitySQL reads the replica identity of the mirrored tables.
const replicaIdentitySQL = `SELECT c.relname::text, c.relreplident::text FROM pg_class c
	WHERE c.oid IN (to_regclass($1), to_regclass($2))`

// ReadReplicationFacts reads what JudgeReplication decides over, for the
// sync's slot and publication. It fails only when the database cannot be
// reached; what it reads wrong is a fact.
func ReadReplicationFacts(ctx context.Context, databaseURL, slot, publication string) (ReplicationFacts, error) {
	cfg, err := source{url: databaseURL}.connConfig()
	if err != nil {
		return ReplicationFacts{}, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return ReplicationFacts{}, fmt.Errorf("preflight: connect: %w", classify(err, authz.ErrUnavailable))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	f := ReplicationFacts{Slot: slot, URLPort: int(cfg.Port), ReplicaIdentity: map[string]string{}}
	if err := conn.QueryRow(qctx, factsSQL, slot, publication, managedReplicationRoles).Scan(&f.WALLevel,
		&f.Superuser, &f.Replication, &f.ManagedRole, &f.SlotExists, &f.SlotElsewhere, &f.SlotTaken, &f.MaxSlots, &f.UsedSlots,
		&f.MaxWALSenders, &f.UsedWALSenders, &f.PublicationExists, &f.PublicationTables,
		&f.MaxSlotWALKeepSize, &f.ServerPort); err != nil {
		return ReplicationFacts{}, fmt.Errorf("preflight: read facts: %w", classify(err, authz.ErrUnavailable))
	}
	if err := readReplicaIdentity(qctx, conn, f.ReplicaIdentity); err != nil {
		return ReplicationFacts{}, err
	}
	if f.BackendPIDsDiffer, err = backendPIDsDiffer(qctx, conn); err != nil {
		return ReplicationFacts{}, err
	}
	f.ReplicationErr = identifySystem(ctx, databaseURL)
	return f, nil
}

func readReplicaIdentity(ctx context.Context, conn *pgx.Conn, into map[string]string) error {
	rows, err := conn.Query(ctx, replicaIdentitySQL, tableCompanies, tableMemberships)
	if err != nil {
		return fmt.Errorf("preflight: read replica identity: %w", classify(err, authz.ErrUnavailable))
	}
	var name, ident string
	_, err = pgx.ForEachRow(rows, []any{&name, &ident}, func() error {
		into[name] = ident
		return nil
	})
	if err != nil {
		return fmt.Errorf("preflight: read replica identity: %w", classify(err, authz.ErrUnavailable))
	}
	return nil
}

// backendPIDsDiffer asks two transactions of one connection for their
// server process: a transaction pooler may hand each to another one.
func backendPIDsDiffer(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var pids [2]int32
	for i := range pids {
		if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pids[i]); err != nil {
			return false, fmt.Errorf("preflight: backend pid: %w", classify(err, authz.ErrUnavailable))
		}
	}
	return pids[0] != pids[1], nil
}

// identifySystem opens a replication connection as the sync does and asks
// the one question every replication client asks first.
func identifySystem(ctx context.Context, databaseURL string) error {
	repl, err := connectReplication(ctx, source{url: databaseURL})
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if _, err := pglogrepl.IdentifySystem(qctx, repl); err != nil {
		return fmt.Errorf("sync: identify system: %w", classify(err, authz.ErrUnavailable))
	}
	return nil
}

// CheckReplication reads the facts and judges them; a database that cannot
// be reached is one failed check.
func CheckReplication(ctx context.Context, databaseURL, slot string) []Check {
	f, err := ReadReplicationFacts(ctx, databaseURL, slot, DefaultPublication)
	if err != nil {
		c := Check{Name: "postgres", Status: StatusFail, Detail: err.Error(), Fix: permanentHint(err),
			Transient: !errors.Is(err, authz.ErrInvalid)}
		if c.Fix == "" {
			c.Fix = "check --database-url and that PostgreSQL is up and reachable"
		}
		return []Check{c}
	}
	return JudgeReplication(f, DefaultPublication)
}
