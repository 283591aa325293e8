package loadbench

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// System names one thing the bench measures.
type System string

// The systems a run can compare.
const (
	SystemFloor      System = "floor"
	SystemSQL        System = "sql"
	SystemSpiceDB    System = "spicedb"
	SystemRemote     System = "remote"
	SystemEmbedded   System = "embedded"
	SystemEmbeddedPG System = "embedded-pg"
)

// Systems lists every system in the order a run measures them: the two
// references first, so that every later row can be set against them.
var Systems = []System{SystemFloor, SystemSQL, SystemSpiceDB, SystemRemote, SystemEmbedded, SystemEmbeddedPG}

// ParseSystems reads a comma-separated list of systems and returns them in
// the order of Systems, each once.
func ParseSystems(list string) ([]System, error) {
	want := map[System]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(Systems, System(name)) {
			return nil, fmt.Errorf("unknown system %q (want some of %s)", name, joinSystems(Systems))
		}
		want[System(name)] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no system to measure (want some of %s)", joinSystems(Systems))
	}
	var out []System
	for _, s := range Systems {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

func joinSystems(systems []System) string {
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = string(s)
	}
	return strings.Join(names, ",")
}

// NeedsSpiceDB reports whether one of systems runs `spicedb serve`.
func NeedsSpiceDB(systems []System) bool {
	return slices.Contains(systems, SystemSpiceDB) || slices.Contains(systems, SystemRemote)
}

// ParseCounts reads a comma-separated list of positive whole numbers; an
// empty list is nil.
func ParseCounts(list string) ([]int, error) {
	var out []int
	for field := range strings.SplitSeq(list, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		n, err := strconv.Atoi(field)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive whole number", field)
		}
		out = append(out, n)
	}
	return out, nil
}

// Config is what a run measures and how hard.
type Config struct {
	Systems []System
	Sizes   Sizes
	// Checks is how many single checks each system answers, about half of
	// them allowed, asked by CheckUsers distinct users (each with one
	// token, so the gateway's verified-token cache applies) from Clients
	// concurrent clients.
	Checks     int
	CheckUsers int
	Clients    int
	// BulkSize is the checks per bulk call; the bulk run asks as many
	// checks in all as the single-check run.
	BulkSize int
	// ListRepeats is how often each list user's whole list is read.
	ListRepeats int
	// Budget bounds each timed run (the checks, the bulk checks, the
	// lists of one size) of one system: a system too slow to answer them
	// all within it answers fewer. Zero is no bound.
	Budget time.Duration
	// LagRate changes per second are committed for LagDuration against
	// every gateway with its index on; zero for either skips the lag run.
	LagRate     int
	LagDuration time.Duration
	// IndexSizes are the membership counts at which the index's memory is
	// measured in this process.
	IndexSizes []int
	// ChartPath receives the SVG chart.
	ChartPath string
	// LogDir keeps every process's log and the key set; empty makes a new
	// temporary one, which outlives the run as its evidence.
	LogDir string
	// SpiceDBBin is `spicedb`, needed for the spicedb and remote systems;
	// TenantgateBin is the tenantgate binary whose serve, sync and floor
	// commands run as processes.
	SpiceDBBin    string
	TenantgateBin string
}

// Validate checks what the flags cannot: sizes that fit together.
func (c Config) Validate() error {
	var errs []error
	if err := c.Sizes.Validate(); err != nil {
		errs = append(errs, err)
	}
	positive := []struct {
		name string
		v    int
	}{{"checks", c.Checks}, {"check users", c.CheckUsers}, {"clients", c.Clients}, {"bulk size", c.BulkSize}, {"list repeats", c.ListRepeats}}
	for _, p := range positive {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %d", p.name, p.v))
		}
	}
	if c.BulkSize > maxBulkChecks {
		errs = append(errs, fmt.Errorf("bulk size %d: the gateway takes at most %d checks per call", c.BulkSize, maxBulkChecks))
	}
	if c.LagRate < 0 || c.LagDuration < 0 || c.Budget < 0 {
		errs = append(errs, errors.New("lag rate, lag duration and budget must not be negative"))
	}
	if c.ChartPath == "" {
		errs = append(errs, errors.New("no chart path"))
	}
	if len(c.Systems) == 0 {
		errs = append(errs, errors.New("no system to measure"))
	}
	return errors.Join(errs...)
}
